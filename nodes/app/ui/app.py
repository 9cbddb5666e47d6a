"""The workbench's pages: identities, one identity's timeline, search by photo, corrections, the live feed.

Handlers that touch the store or the models run in worker threads, never on the event loop; the store's one
connection is used by one thread at a time. Every request passes nodes.app.ui.guard first.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from nodes.app.ui import api, api_routes
from nodes.app.ui.corrections import apply_correction
from nodes.app.ui.feed import events
from nodes.app.ui.guard import Guard, GuardSettings, check_csrf
from nodes.app.ui.uploads import MAX_UPLOAD_PHOTOS, PhotoTooLarge, Upload, check_sizes, decoded

if TYPE_CHECKING:
    from nodes.matching.decision import ReidSettings
    from nodes.store.face_store import FaceStore

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
PAGE_SIZE = 60  # identities on a page of the list


class IdConvertor(Convertor):
    """A database id in a path: at most 18 digits, so it always fits a bigint (a longer one is a 404)."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())


class OneAtATime:
    """An object whose methods run under one lock: threads share the store's single connection in turn."""

    def __init__(self, target: Any) -> None:
        self._target = target
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return value(*args, **kwargs)

        return locked


@dataclass
class Workbench:
    """What the pages work on: the store, its reid settings, where annotated videos are, the decisions' topic."""

    store: FaceStore
    settings: ReidSettings
    videos_dir: Path
    feed: str | None  # endpoint of the `reid` topic, or None: no live feed
    load_models: Any  # () -> (detector, embedder), called on the first search
    report_dir: Path | None = None  # `zdg report`'s folder: its crops and pages of a deleted identity go too
    models: tuple | None = field(default=None, repr=False)
    feed_malformed: int = 0  # messages on the feed that were not zdg messages, skipped
    models_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.store = OneAtATime(self.store)

    def detector_and_embedder(self) -> tuple:
        """The models, loaded on first use; one search runs them at a time (bounded memory, no shared state)."""
        if self.models is None:
            self.models = self.load_models()
        return self.models


def fmt_distance(value: float | None) -> str:
    return "-" if value is None else f"{max(value, 0.0):.3f}"


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def fmt_detail(detail: dict | None) -> str:
    """An event's detail as `key value` pairs, numbers rounded, empty ones left out."""
    return ", ".join(f"{k} {f'{v:.3f}' if isinstance(v, float) else v}" for k, v in (detail or {}).items() if v is not None)


TEMPLATES.env.filters.update(distance=fmt_distance, clock=fmt_time, detail=fmt_detail, url=lambda s: quote(str(s), safe=""))
TEMPLATES.env.globals["plural"] = lambda n, one, many=None: f"{n} {one if n == 1 else (many or one + 's')}"


def bench(request: Request) -> Workbench:
    return request.app.state.bench


def actor(request: Request) -> str:
    return f"ui:{request.client.host if request.client else 'unknown'}"


def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    return TEMPLATES.TemplateResponse(request, name, {"message": request.query_params.get("msg"),
                                                      "csrf": request.state.csrf_token, **context}, status_code=status)


def identities(request: Request) -> Response:
    """A page of identities by id (`?after=ID`), PAGE_SIZE at a time."""
    store = bench(request).store
    after = request.query_params.get("after", "0")
    after_id = int(after) if after.isdigit() and len(after) <= 18 else 0
    people = store.identities(after=after_id, limit=PAGE_SIZE + 1)
    return page(request, "identities.html", people=people[:PAGE_SIZE], total=store.identity_count(),
                after=after_id, next_after=people[PAGE_SIZE - 1].id if len(people) > PAGE_SIZE else None)


def identity(request: Request) -> Response:
    wb = bench(request)
    asked = request.path_params["id"]
    current = wb.store.resolve(asked)
    if current != asked:
        return RedirectResponse(f"/identity/{current}", status_code=303)
    found = wb.store.identities([current])
    if not found:
        return page(request, "missing.html", 404, what=f"identity {asked}")
    videos = {p.name.removesuffix("_annotated.mp4") for p in wb.videos_dir.glob("*_annotated.mp4")}
    return page(request, "identity.html", person=found[0], sequences=wb.store.sequences(current),
                events=wb.store.events(current, 30), videos=videos,
                others=wb.store.identities(wb.store.likely_targets(current)))


async def correct(request: Request) -> Response:
    """One correction from a form; back to the identity's page (or the list) with what happened."""
    form = await request.form(max_files=0, max_fields=1000)
    check_csrf(request, form)
    done = await run_in_threadpool(apply_correction, bench(request), request.path_params["action"],
                                   request.path_params["id"], form, actor(request))
    return done or PlainTextResponse(f"no action {request.path_params['action']!r:.40}", status_code=404)


def search_photos(wb: Workbench, uploads: list[Upload]) -> dict[str, Any]:
    """The search page's context for the uploaded photos (PhotoTooLarge when one is over the pixel cap)."""
    from nodes.app.search import photo_embeddings, search

    unreadable = check_sizes(uploads)
    readable = len(uploads) - len(unreadable)
    with wb.models_lock:
        embeddings, no_face = photo_embeddings(decoded(uploads, unreadable), *wb.detector_and_embedder()) \
            if readable else (None, [])
    matches = search(wb.store, embeddings, wb.settings, top=8) if embeddings is not None else []
    people = {p.id: p for p in wb.store.identities([m.cluster_id for m in matches])} if matches else {}
    return {"matches": matches, "people": people, "photos": readable - len(no_face), "no_face": no_face,
            "unreadable": [uploads[i].name for i in sorted(unreadable)]}


async def search_page(request: Request) -> Response:
    if request.method == "GET":
        return page(request, "search.html", matches=None)
    form = await request.form(max_files=MAX_UPLOAD_PHOTOS, max_fields=10)
    check_csrf(request, form)
    uploads = [Upload(str(f.filename)[:200], await f.read()) for f in form.getlist("photos")
               if isinstance(f, UploadFile) and f.filename]
    if not any(u.data for u in uploads):
        return page(request, "search.html", 400, matches=None, refused="no photo was uploaded (or only empty files)")
    try:
        found = await run_in_threadpool(search_photos, bench(request), uploads)
    except PhotoTooLarge as exc:
        return page(request, "search.html", 413, matches=None, refused=str(exc))
    return page(request, "search.html", **found)


def watch(request: Request) -> Response:
    source = request.path_params["source"]
    path = bench(request).videos_dir / f"{source}_annotated.mp4"
    try:
        start = float(request.query_params.get("t") or 0)
    except ValueError:
        start = math.nan
    if not math.isfinite(start) or start < 0:
        return PlainTextResponse("zdg ui: t must be a time in seconds (e.g. ?t=12.5)", status_code=400)
    if not path.is_file():
        return page(request, "missing.html", 404, what=f"annotated video of {source} (under {bench(request).videos_dir})")
    return page(request, "watch.html", source=source, start=start)


def video(request: Request) -> Response:
    source = request.path_params["source"]
    path = bench(request).videos_dir / f"{source}_annotated.mp4"
    if "/" in source or not path.is_file():
        return PlainTextResponse("no such video", status_code=404)
    return FileResponse(path, media_type="video/mp4")  # answers Range requests: the player can seek


def live(request: Request) -> Response:
    return page(request, "live.html", feed=bench(request).feed)


async def empty_store(request: Request, exc: Exception) -> Response:
    """A database no graph has written to yet has no tables: say so instead of failing."""
    if request.url.path.startswith("/api/"):
        return api.problem(404, "the store holds nothing yet: no graph or enrolment has written to it")
    return page(request, "identities.html", people=[], total=0)


async def plain_error(request: Request, exc: HTTPException) -> Response:
    return PlainTextResponse(f"{exc.detail}\n", status_code=exc.status_code)


def make_app(wb: Workbench, guard: GuardSettings | None = None) -> Starlette:
    """The workbench; `guard`: who may reach it (default: served on 127.0.0.1, no token)."""
    from psycopg.errors import UndefinedTable

    app = Starlette(exception_handlers={UndefinedTable: empty_store, HTTPException: plain_error}, routes=[
        Route("/", identities),
        Route("/identity/{id:id}", identity),
        Route("/identity/{id:id}/face.png", api.identity_face),
        Route("/identity/{id:id}/{action:str}", correct, methods=["POST"]),
        Route("/crop/{sequence:id}/{frame:id}.png", api.sequence_crop),
        Route("/search", search_page, methods=["GET", "POST"]),
        Route("/watch/{source:str}", watch),
        Route("/video/{source:str}", video),
        Route("/live", live),
        Route("/events", events),
        *api_routes.routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ], middleware=[Middleware(Guard, settings=guard or GuardSettings.listening_on("127.0.0.1"))])
    app.state.bench = wb
    return app

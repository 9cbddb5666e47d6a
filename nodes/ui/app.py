"""The workbench's pages: identities, one identity's timeline, search by photo, corrections, the live feed.

Every handler is `async` and uses the one store connection in turn (one event loop, no threads sharing it);
only the live feed waits, on its own ZeroMQ socket.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from nodes.annotate import remove_strips
from nodes.store.clusters import KeptApart

if TYPE_CHECKING:
    from nodes.decision import ReidSettings
    from nodes.store.face_store import FaceStore

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TOKEN_COOKIE = "zdg_token"
MAX_UPLOAD_PHOTOS = 20


@dataclass
class Workbench:
    """What the pages work on: the store, its reid settings, where annotated videos are, the decisions' topic."""

    store: FaceStore
    settings: ReidSettings
    videos_dir: Path
    feed: str | None  # endpoint of the `reid` topic, or None: no live feed
    load_models: Any  # () -> (detector, embedder), called on the first search
    token: str | None = None  # required of every request when set (the app listens beyond localhost)
    models: tuple | None = field(default=None, repr=False)


def token_for(host: str, env_token: str | None) -> str | None:
    """The token requests must carry: none on a loopback address, else $ZDG_UI_TOKEN or a new random one."""
    import ipaddress

    if host == "localhost" or ipaddress.ip_address(host).is_loopback:
        return None
    return env_token or secrets.token_urlsafe(18)


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
    return TEMPLATES.TemplateResponse(request, name, {"message": request.query_params.get("msg"), **context},
                                      status_code=status)


def back_to(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?msg={quote(message)}", status_code=303)


async def identities(request: Request) -> Response:
    people = bench(request).store.identities()
    return page(request, "identities.html", people=people)


async def identity(request: Request) -> Response:
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
                events=wb.store.events(current, 30), videos=videos, others=wb.store.identities())


async def correct(request: Request) -> Response:
    """One correction from a form; back to the identity's page (or the list) with what happened."""
    wb, form, action = bench(request), await request.form(), request.path_params["action"]
    cluster_id = request.path_params["id"]
    who = actor(request)
    try:
        if action == "rename":
            wb.store.rename(cluster_id, str(form["name"]).strip(), who)
            return back_to(f"/identity/{cluster_id}", f"renamed to {form['name']}")
        if action == "merge":
            target = int(form["into"])
            wb.store.merge(cluster_id, target, who)
            return back_to(f"/identity/{wb.store.resolve(target)}", f"identity {cluster_id} merged into this one")
        if action == "different":
            other = int(form["other"])
            wb.store.mark_different(cluster_id, other, who)
            return back_to(f"/identity/{cluster_id}", f"marked as a different person than identity {other}")
        if action == "delete":
            gone = wb.store.delete(cluster_id, who)
            strips = remove_strips(wb.videos_dir, gone.sequences)
            return back_to("/", f"identity {cluster_id} deleted with its {gone.faces} faces and {strips} crop strips")
        if action == "split":
            chosen = [int(v) for v in form.getlist("sequence")]
            new_id = wb.store.split(cluster_id, chosen, who)
            return back_to(f"/identity/{new_id}", f"split from identity {cluster_id}: marked as a different person")
        if action == "move":
            sequence_id, target = int(form["sequence"]), int(form["into"])
            target = wb.store.move_sequence(sequence_id, target, who)
            return back_to(f"/identity/{target}", f"sequence {sequence_id} moved here from identity {cluster_id}")
    except (LookupError, ValueError, KeyError, KeptApart) as exc:
        return back_to(f"/identity/{cluster_id}", f"not done: {exc}")
    return PlainTextResponse(f"no action {action!r}", status_code=404)


async def identity_face(request: Request) -> Response:
    crops = bench(request).store.crops(request.path_params["id"], 1)
    return png(crops[0][0] if crops else None)


async def sequence_crop(request: Request) -> Response:
    return png(bench(request).store.crop(request.path_params["sequence"], request.path_params["frame"]))


def png(data: bytes | None) -> Response:
    if data is None:
        return PlainTextResponse("no crop stored", status_code=404)
    return Response(bytes(data), media_type="image/png", headers={"Cache-Control": "max-age=3600"})


async def search_page(request: Request) -> Response:
    if request.method == "GET":
        return page(request, "search.html", matches=None)
    import cv2

    from nodes.search import photo_embeddings, search

    wb = bench(request)
    form = await request.form()
    uploads = [f for f in form.getlist("photos") if getattr(f, "filename", "")][:MAX_UPLOAD_PHOTOS]
    images, unreadable = [], []
    for upload in uploads:
        image = cv2.imdecode(np.frombuffer(await upload.read(), np.uint8), cv2.IMREAD_COLOR)
        (unreadable.append(upload.filename) if image is None else images.append((upload.filename, image)))
    if wb.models is None:
        wb.models = wb.load_models()
    embeddings, no_face = photo_embeddings(images, *wb.models)
    matches = search(wb.store, embeddings, wb.settings, top=8)
    people = {p.id: p for p in wb.store.identities([m.cluster_id for m in matches])}
    return page(request, "search.html", matches=matches, people=people, photos=len(images) - len(no_face),
                no_face=no_face, unreadable=unreadable)


async def watch(request: Request) -> Response:
    source = request.path_params["source"]
    path = bench(request).videos_dir / f"{source}_annotated.mp4"
    if not path.is_file():
        return page(request, "missing.html", 404, what=f"annotated video of {source} (under {bench(request).videos_dir})")
    return page(request, "watch.html", source=source, start=float(request.query_params.get("t", 0) or 0))


async def video(request: Request) -> Response:
    source = request.path_params["source"]
    path = bench(request).videos_dir / f"{source}_annotated.mp4"
    if "/" in source or not path.is_file():
        return PlainTextResponse("no such video", status_code=404)
    return FileResponse(path, media_type="video/mp4")  # answers Range requests: the player can seek


async def live(request: Request) -> Response:
    return page(request, "live.html", feed=bench(request).feed)


def decision_view(fields: dict) -> dict:
    """What the live feed shows of a `reid` decision."""
    keys = ("status", "cluster_id", "name", "distance", "sequence_id", "video", "first_frame", "last_frame", "merged_from")
    return {k: fields.get(k) for k in keys if k in fields}


async def events(request: Request) -> Response:
    """Server-sent events: each decision published on the `reid` topic, as JSON."""
    import zmq
    import zmq.asyncio

    from zdg.message import DecodeError, decode

    feed = bench(request).feed
    if not feed:
        return PlainTextResponse("no feed: start `zdg ui --feed ENDPOINT`", status_code=404)

    async def stream():
        sock = zmq.asyncio.Context.instance().socket(zmq.SUB)
        sock.linger = 0
        sock.setsockopt(zmq.SUBSCRIBE, b"reid")
        sock.connect(feed)
        try:
            yield ": subscribed\n\n"
            while not await request.is_disconnected():
                if not await sock.poll(1000):
                    yield ": idle\n\n"
                    continue
                try:
                    _, msg = decode(await sock.recv_multipart())
                except DecodeError:
                    continue
                if not msg.eos:
                    yield f"data: {json.dumps(decision_view(msg.fields), default=str)}\n\n"
        finally:
            sock.close()

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


class TokenGate(BaseHTTPMiddleware):
    """With a token set, a request needs it: once as ?token=... (then kept in a cookie) or as a Bearer header."""

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        token = request.app.state.bench.token
        if token is None:
            return await call_next(request)
        offered = (request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)
                   or request.headers.get("authorization", "").removeprefix("Bearer "))
        if not secrets.compare_digest(offered or "", token):
            return PlainTextResponse("zdg ui: this address needs the token printed at start (?token=...)", status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response


async def empty_store(request: Request, exc: Exception) -> Response:
    """A database no graph has written to yet has no tables: say so instead of failing."""
    return page(request, "identities.html", people=[])


def make_app(wb: Workbench) -> Starlette:
    from psycopg.errors import UndefinedTable

    app = Starlette(exception_handlers={UndefinedTable: empty_store}, routes=[
        Route("/", identities),
        Route("/identity/{id:int}", identity),
        Route("/identity/{id:int}/face.png", identity_face),
        Route("/identity/{id:int}/{action:str}", correct, methods=["POST"]),
        Route("/crop/{sequence:int}/{frame:int}.png", sequence_crop),
        Route("/search", search_page, methods=["GET", "POST"]),
        Route("/watch/{source:str}", watch),
        Route("/video/{source:str}", video),
        Route("/live", live),
        Route("/events", events),
    ], middleware=[Middleware(TokenGate)])
    app.state.bench = wb
    return app

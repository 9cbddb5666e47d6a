"""The workbench's JSON API under /api/: identities (paged), one identity with its sequences and history, search by
photo, enrolment, every correction, and the store's recent events. `/api/openapi.json` describes it with schemas
made from the same types the pages show (Identity, SequenceRow, Event, Match); `/api/docs` lists it. The guard in
front is the pages' own: the token (or `Authorization: Bearer`), no cross-site writes, bounded bodies."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict, UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from nodes.app.corrections import ACTIONS
from nodes.app.search import Match
from nodes.app.ui.corrections import correct as perform_correction
from nodes.app.ui.guard import check_csrf
from nodes.app.ui.uploads import MAX_UPLOAD_PHOTOS, PhotoTooLarge, Upload, check_sizes, decoded
from nodes.store.browse import DecidedSequence, Event, SequenceRow
from nodes.store.clusters import Identity, KeptApart

MAX_PAGE = 500
IDENTITY = TypeAdapter(Identity)


class IdentityPage(BaseModel):
    items: list[Identity]
    total: int
    next_after: int | None = Field(description="pass as ?after= for the next page; null on the last one")


class SequencePage(BaseModel):
    items: list[SequenceRow]
    next_after: int | None


class EventList(BaseModel):
    items: list[Event]


class DecisionPage(BaseModel):
    items: list[DecidedSequence]
    next_before: int | None = Field(description="pass as ?before= for the next (older) page; null on the last one")


class SearchResult(BaseModel):
    matches: list[Match]
    photos: int = Field(description="photos in which a face was found")
    no_face: list[str]
    unreadable: list[str]


class Enrolled(BaseModel):
    identity: int | None = Field(description="the named identity; null when no photo had a face (nothing stored)")
    no_face: list[str]
    unreadable: list[str]


class Correction(BaseModel):
    """The fields a correction takes: rename `name`; merge and move `into`; different `other`; split and move
    `sequence` (split: one or more). Other keys are refused."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    into: int | None = None
    other: int | None = None
    sequence: list[int] | None = None


class Done(BaseModel):
    identity: int | None = Field(description="where to look next; null when the identity was deleted")
    message: str


class Problem(BaseModel):
    error: str


def answer(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def problem(status: int, error: str) -> Response:
    return answer(Problem(error=error), status)


def paging(request: Request, default: int = 60) -> tuple[int, int] | Response:
    """(after, limit) from the query, or a 400 naming the bad parameter."""
    values = {}
    for name, fallback in (("after", 0), ("limit", default)):
        raw = request.query_params.get(name, str(fallback))
        if not raw.isdigit() or len(raw) > 18:
            return problem(400, f"{name}: expected a whole number")
        values[name] = int(raw)
    if not 1 <= values["limit"] <= MAX_PAGE:
        return problem(400, f"limit: between 1 and {MAX_PAGE}")
    return values["after"], values["limit"]


def bench(request: Request) -> Any:
    return request.app.state.bench


def list_identities(request: Request) -> Response:
    page = paging(request)
    if isinstance(page, Response):
        return page
    after, limit = page
    store = bench(request).store
    people = store.identities(after=after, limit=limit + 1)
    return answer(IdentityPage(items=people[:limit], total=store.identity_count(),
                               next_after=people[limit - 1].id if len(people) > limit else None))


def current_identity(request: Request, suffix: str = "") -> int | Response:
    """The identity the path names now (a merged-away id redirects to the one it was merged into), or a 404."""
    store = bench(request).store
    asked = request.path_params["id"]
    current = store.resolve(asked)
    if current != asked:
        return RedirectResponse(f"/api/identities/{current}{suffix}", status_code=308)
    if not store.identities([current]):
        return problem(404, f"no identity {asked}")
    return current


def one_identity(request: Request) -> Response:
    found = current_identity(request)
    if isinstance(found, Response):
        return found
    return Response(IDENTITY.dump_json(bench(request).store.identities([found])[0]), media_type="application/json")


def identity_sequences(request: Request) -> Response:
    found, page = current_identity(request, "/sequences"), paging(request, 100)
    if isinstance(found, Response) or isinstance(page, Response):
        return found if isinstance(found, Response) else page
    after, limit = page
    rows = sorted((r for r in bench(request).store.sequences(found) if r.id > after), key=lambda r: r.id)
    return answer(SequencePage(items=rows[:limit], next_after=rows[limit - 1].id if len(rows) > limit else None))


def identity_events(request: Request) -> Response:
    found, page = current_identity(request, "/events"), paging(request, 50)
    if isinstance(found, Response) or isinstance(page, Response):
        return found if isinstance(found, Response) else page
    return answer(EventList(items=bench(request).store.events(found, page[1])))


def recent_decisions(request: Request) -> Response:
    page = paging(request, 50)
    if isinstance(page, Response):
        return page
    raw = request.query_params.get("before")
    if raw is not None and (not raw.isdigit() or len(raw) > 18):
        return problem(400, "before: expected a whole number")
    limit = page[1]
    rows = bench(request).store.recent_sequences(int(raw) if raw else None, limit + 1)
    return answer(DecisionPage(items=rows[:limit], next_before=rows[limit - 1].id if len(rows) > limit else None))


def png(data: bytes | None) -> Response:
    if data is None:
        return PlainTextResponse("no crop stored", status_code=404)
    return Response(bytes(data), media_type="image/png")  # never cached (guard): a deleted face must not linger


def sequence_crop(request: Request) -> Response:
    return png(bench(request).store.crop(request.path_params["sequence"], request.path_params["frame"]))


def identity_face(request: Request) -> Response:
    crops = bench(request).store.crops(request.path_params["id"], 1)
    return png(crops[0][0] if crops else None)


def recent_events(request: Request) -> Response:
    page = paging(request, 50)
    return page if isinstance(page, Response) else answer(EventList(items=bench(request).store.events(None, page[1])))


async def correct(request: Request) -> Response:
    action = request.path_params["action"]
    if action not in ACTIONS:
        return problem(404, f"no action {action!r:.40}; one of {', '.join(ACTIONS)}")
    try:
        body = Correction.model_validate_json(await request.body() or b"{}")
    except ValueError as exc:
        return problem(400, f"the body must be a JSON object of {list(Correction.model_fields)}: {str(exc)[:300]}")
    fields = ImmutableMultiDict([(k, str(v)) for k, vs in body.model_dump(exclude_none=True).items()
                                 for v in (vs if isinstance(vs, list) else [vs])])
    check_csrf(request, fields)
    try:
        done = await run_in_threadpool(perform_correction, bench(request), action, request.path_params["id"], fields,
                                       f"api:{request.client.host if request.client else 'unknown'}")
    except KeptApart as exc:
        return problem(409, str(exc))
    except (LookupError, ValueError) as exc:
        return problem(404 if isinstance(exc, LookupError) else 400, str(exc))
    return answer(Done(identity=done.identity, message=done.message))


async def photos_of(request: Request, extra_fields: int = 0) -> tuple[Any, list[Upload]] | Response:
    form = await request.form(max_files=MAX_UPLOAD_PHOTOS, max_fields=10 + extra_fields)
    check_csrf(request, form)
    uploads = [Upload(str(f.filename)[:200], await f.read()) for f in form.getlist("photos")
               if isinstance(f, UploadFile) and f.filename]
    if not any(u.data for u in uploads):
        return problem(400, "no photo was uploaded (multipart field 'photos')")
    return form, uploads


async def search(request: Request) -> Response:
    from nodes.app.ui.app import search_photos

    got = await photos_of(request)
    if isinstance(got, Response):
        return got
    try:
        found = await run_in_threadpool(search_photos, bench(request), got[1])
    except PhotoTooLarge as exc:
        return problem(413, str(exc))
    return answer(SearchResult(matches=found["matches"], photos=found["photos"], no_face=found["no_face"],
                               unreadable=found["unreadable"]))


def enroll_uploads(wb: Any, name: str, uploads: list[Upload]) -> Enrolled:
    """Each uploaded photo's largest face added to the identity named `name`; a photo is known by its content's
    hash, so the same upload twice adds it once."""
    from nodes.vision.photos import photo_faces

    unreadable = check_sizes(uploads)
    with wb.models_lock:
        detector, embedder = wb.detector_and_embedder()
        found, no_face = photo_faces(decoded(uploads, unreadable), detector, embedder)
    by_name = {u.name: u for u in uploads}
    faces = [(f"upload:sha256:{hashlib.sha256(by_name[label].data).hexdigest()}", label, *face) for label, face in found]
    identity = wb.store.enroll(name, faces, embedder.recogniser.name) if faces else None
    return Enrolled(identity=identity, no_face=no_face, unreadable=[uploads[i].name for i in sorted(unreadable)])


async def enroll(request: Request) -> Response:
    got = await photos_of(request, extra_fields=1)
    if isinstance(got, Response):
        return got
    form, uploads = got
    name = str(form.get("name") or "").strip()
    if not name or len(name) > 200:
        return problem(400, "name: the person's name (1 to 200 characters)")
    try:
        done = await run_in_threadpool(enroll_uploads, bench(request), name, uploads)
    except PhotoTooLarge as exc:
        return problem(413, str(exc))
    return answer(done, 201 if done.identity is not None else 422)

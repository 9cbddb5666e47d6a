"""The API's one table of operations: the routes the workbench mounts and the OpenAPI document it serves both come
from it, so they cannot disagree."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from nodes.app.ui import api

REF = "#/components/schemas/{model}"
PAGING = [("after", "the last id of the previous page (0: from the start)"), ("limit", f"items (1 to {api.MAX_PAGE})")]
ID = [("id", "an identity's id (one merged away redirects, 308, to the one it was merged into)")]
CROP = [("sequence", "a sequence's id"), ("frame", "one of its crop_frames")]
PNG = {"content": {"image/png": {}}}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI form: /identities/{id}
    handler: Callable
    summary: str
    answers: type[BaseModel] | str | None  # a model, "Identity", or None (PNG)
    query: tuple = ()
    body: type[BaseModel] | None = None
    upload: tuple[str, ...] = ()  # multipart fields besides `photos`
    status: int = 200


OPERATIONS = [
    Operation("GET", "/identities", api.list_identities, "identities by id, a page at a time", api.IdentityPage,
              tuple(PAGING)),
    Operation("GET", "/identities/{id}", api.one_identity, "one identity", "Identity"),
    Operation("GET", "/identities/{id}/sequences", api.identity_sequences, "its sequences by id, a page at a time",
              api.SequencePage, tuple(PAGING)),
    Operation("GET", "/identities/{id}/events", api.identity_events, "its history (corrections, merges), newest first",
              api.EventList, (PAGING[1],)),
    Operation("GET", "/identities/{id}/face.png", api.identity_face, "its best face crop", None),
    Operation("POST", "/identities/{id}/{action}", api.correct, "a correction: rename, merge, different, delete, split "
              "or move (fields in the body)", api.Done, body=api.Correction),
    Operation("POST", "/search", api.search, "the identities nearest to the faces in one or more photos",
              api.SearchResult, upload=()),
    Operation("POST", "/enroll", api.enroll, "add photos of a named person (the named identity)", api.Enrolled,
              upload=("name",), status=201),
    Operation("GET", "/decisions", api.recent_decisions, "the newest stored sequences with their identity (null: "
              "junk), newest first", api.DecisionPage, (("before", "the last id of the previous page"), PAGING[1])),
    Operation("GET", "/sequences/{sequence}/crops/{frame}.png", api.sequence_crop, "a sequence's stored crop of a "
              "frame (its crop_frames)", None),
    Operation("GET", "/events", api.recent_events, "the store's recent history, newest first", api.EventList,
              (PAGING[1],)),
]


def starlette_path(path: str) -> str:
    return path.replace("{id}", "{id:id}").replace("{action}", "{action:str}").replace("{sequence}", "{sequence:id}") \
        .replace("{frame}", "{frame:id}")


def schemas() -> dict[str, Any]:
    models = sorted({op.answers for op in OPERATIONS if isinstance(op.answers, type)} | {api.Problem, api.Correction},
                    key=lambda m: m.__name__)
    _, found = models_json_schema([(m, "serialization") for m in models], ref_template=REF)
    return found["$defs"]


def operation_doc(op: Operation) -> dict[str, Any]:
    params = [{"name": n, "in": "path", "required": True, "description": d, "schema": {"type": "integer"}}
              for n, d in [*ID, *CROP] if f"{{{n}}}" in op.path]
    if "{action}" in op.path:
        params.append({"name": "action", "in": "path", "required": True, "schema": {"enum": list(api.ACTIONS)}})
    params += [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "integer"}}
               for n, d in op.query]
    answer = PNG if op.answers is None else {"content": {"application/json": {"schema": {"$ref": REF.format(
        model=op.answers if isinstance(op.answers, str) else op.answers.__name__)}}}}
    problem = {"content": {"application/json": {"schema": {"$ref": REF.format(model="Problem")}}}}
    doc: dict[str, Any] = {"summary": op.summary, "parameters": params,
                           "responses": {str(op.status): {"description": "done", **answer},
                                         "400": {"description": "a bad parameter or body", **problem},
                                         "404": {"description": "no such identity", **problem}}}
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "$ref": REF.format(model=op.body.__name__)}}}}
    if op.method == "POST" and op.handler in (api.search, api.enroll):
        fields = {"photos": {"type": "array", "items": {"type": "string", "format": "binary"}},
                  **{f: {"type": "string"} for f in op.upload}}
        doc["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "properties": fields, "required": ["photos", *op.upload]}}}}
    return doc


def openapi() -> dict[str, Any]:
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        paths.setdefault(f"/api{op.path}", {})[op.method.lower()] = operation_doc(op)
    return {"openapi": "3.1.0",
            "info": {"title": "zdg workbench API", "version": "1",
                     "description": "Identities, search, enrolment and corrections over a zdg store. Outside 127.0.0.1 "
                                    "every request needs `Authorization: Bearer <token>` (the token `zdg ui` prints)."},
            "components": {"schemas": schemas(),
                           "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
            "security": [{"token": []}], "paths": paths}


def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi())


def docs(request: Request) -> Response:
    """Every operation with its parameters and a curl line; the GET ones without a path parameter are links."""
    rows = []
    for op in OPERATIONS:
        path = f"/api{op.path}"
        shown = f'<a href="{path}">{path}</a>' if op.method == "GET" and "{" not in path else html.escape(path)
        params = ", ".join(n for n, _ in [*ID, *CROP] if f"{{{n}}}" in path) + "".join(f", ?{n}=" for n, _ in op.query)
        curl = f"curl -H 'Authorization: Bearer $TOKEN' -X {op.method} http://HOST:PORT{path}"
        rows.append(f"<tr><td>{op.method}</td><td>{shown}</td><td>{html.escape(op.summary)}</td>"
                    f"<td>{html.escape(params.strip(', '))}</td><td><code>{html.escape(curl)}</code></td></tr>")
    return HTMLResponse("<!doctype html><html><head><meta charset='utf-8'><title>zdg API</title>"
                        "<link rel='stylesheet' href='/static/style.css'></head><body><h1>zdg workbench API</h1>"
                        "<p>The machine-readable document: <a href='/api/openapi.json'>/api/openapi.json</a> (OpenAPI 3.1)."
                        "</p><table><tr><th>method</th><th>path</th><th>what</th><th>parameters</th><th>try</th></tr>"
                        + "".join(rows) + "</table></body></html>")


def routes() -> list[Route]:
    found = [Route(f"/api{starlette_path(op.path)}", op.handler, methods=[op.method]) for op in OPERATIONS]
    return [*found, Route("/api/openapi.json", openapi_json), Route("/api/docs", docs)]

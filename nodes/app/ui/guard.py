"""What every request to the workbench passes first (plain ASGI, so the live feed still notices a closed tab):
the Host header on an allow-list (no DNS rebinding), the token where one is set, no state change from another
site (Origin / Sec-Fetch-Site, and a per-session CSRF token checked with the form), a bounded body, and security
headers on every answer (CSP, no framing, no sniffing, nothing cached)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import FormData, Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse

TOKEN_COOKIE = "zdg_token"
SESSION_COOKIE = "zdg_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                    (b"cache-control", b"no-store")]


@dataclass(frozen=True)
class GuardSettings:
    """Who may talk to the workbench: `hosts` are the Host names it answers to (any IP literal too when it listens
    on every interface); `token` is required of every request when set; bodies over `max_body` bytes get 413."""

    hosts: frozenset[str]
    any_ip_host: bool = False
    token: str | None = None
    tls: bool = False
    max_body: int = 64 * 1024 * 1024
    csrf_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @classmethod
    def listening_on(cls, host: str, allow: list[str] | None = None, **options: Any) -> GuardSettings:
        """The Host names a server bound to `host` answers to: that address, the loopback names when it is on
        loopback, this machine's names when it is on every interface, and `allow` (--allow-host)."""
        names = {host.lower().strip("[]"), *(a.lower() for a in allow or [])}
        if is_loopback(host):
            names |= {"localhost", "127.0.0.1", "::1"}
        wildcard = host in WILDCARDS
        if wildcard:
            names |= {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
        return cls(frozenset(names), wildcard, **options)

    def host_allowed(self, header: str | None) -> bool:
        name = host_name(header or "")
        if name in self.hosts:
            return True
        return self.any_ip_host and is_ip(name)

    def csrf_token(self, session: str) -> str:
        """The form token of a browser session: an HMAC of its cookie, so a page that can set cookies (another
        port of the same host) still cannot make one that passes."""
        return hmac.new(self.csrf_key, session.encode(), hashlib.sha256).hexdigest()


def host_name(header: str) -> str:
    """The host of a Host header, lower case, without port or IPv6 brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """`host` (an address or a name) is on loopback only; a name is resolved (OSError when it cannot be)."""
    if host == "localhost":
        return True
    if host in WILDCARDS:
        return False
    if is_ip(host.strip("[]")):
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    found = {info[4][0] for info in socket.getaddrinfo(host, None)}
    return all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)


def same(offered: str | None, expected: str) -> bool:
    """Constant-time comparison of text that may hold any character (compare_digest takes ASCII str only)."""
    return offered is not None and hmac.compare_digest(offered.encode("utf-8", "replace"), expected.encode())


def refuse(status: int, reason: str) -> PlainTextResponse:
    return PlainTextResponse(f"zdg ui: {reason}\n", status_code=status)


class Guard:
    """The checks above, around the whole app."""

    def __init__(self, app: Any, settings: GuardSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        s = self.settings
        request = Request(scope)
        headers = request.headers
        if not s.host_allowed(headers.get("host")):
            await refuse(400, f"unknown Host {headers.get('host', '')!r:.80}: start with --allow-host NAME to serve "
                         "that name")(scope, receive, send)
            return
        bearer = headers.get("authorization", "").removeprefix("Bearer ").strip() or None
        if s.token is not None:
            offered = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE) or bearer
            if not same(offered, s.token):
                await refuse(401, "this address needs the token printed at start (?token=...)")(scope, receive, send)
                return
        if scope["method"] not in SAFE_METHODS:
            problem = cross_site(headers, scope)
            if problem:
                await refuse(403, problem)(scope, receive, send)
                return
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > s.max_body:
                await refuse(413, f"the request is {int(length) / 2**20:.1f} MB; at most {s.max_body / 2**20:g} MB is "
                             "taken")(scope, receive, send)
                return
            receive = bounded(receive, s.max_body)
        session = request.cookies.get(SESSION_COOKIE)
        new_session = None if session else secrets.token_urlsafe(24)
        state = scope.setdefault("state", {})
        state["csrf_token"] = s.csrf_token(session or new_session)
        state["bearer"] = s.token is not None and same(bearer, s.token)
        cookies = cookie_headers(s, request, new_session)

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                message = {**message, "headers": [*kept, *SECURITY_HEADERS, *cookies]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def cross_site(headers: Headers, scope: dict) -> str | None:
    """Why a state-changing request looks sent by another site (None: it does not): a browser says so in
    Sec-Fetch-Site, and its Origin must be this server's own."""
    site = headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return f"a change sent from another site (Sec-Fetch-Site: {site:.40}) is refused"
    origin = headers.get("origin")
    if origin is not None:
        scheme = "https" if scope.get("scheme") == "https" else "http"
        if origin.lower() != f"{scheme}://{headers.get('host', '').lower()}":
            return f"a change sent from another origin ({origin:.80}) is refused"
    return None


def bounded(receive: Any, limit: int) -> Any:
    """`receive` that raises 413 once the body passes `limit` bytes (a chunked body has no Content-Length)."""
    taken = 0

    async def read() -> dict:
        nonlocal taken
        message = await receive()
        taken += len(message.get("body", b""))
        if taken > limit:
            raise HTTPException(413, f"zdg ui: the request is over {limit / 2**20:g} MB; refused")
        return message

    return read


def cookie_headers(s: GuardSettings, request: Request, new_session: str | None) -> list[tuple[bytes, bytes]]:
    """Set-Cookie for a new browser session, and for the token when it came in the URL."""
    jar = SimpleCookie()
    if new_session:
        jar[SESSION_COOKIE] = new_session
    if s.token is not None and request.query_params.get("token"):
        jar[TOKEN_COOKIE] = s.token
    for morsel in jar.values():
        morsel.update({"httponly": True, "samesite": "Strict", "path": "/", "secure": s.tls})
    return [(b"set-cookie", m.OutputString().encode()) for m in jar.values()]


def check_csrf(request: Request, form: FormData) -> None:
    """A change needs this session's CSRF token (in the form or the X-CSRF-Token header), unless it carries the
    Bearer token, which no other site can make a browser send; else 403."""
    if request.state.bearer:
        return
    offered = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not request.cookies.get(SESSION_COOKIE) or not same(offered if isinstance(offered, str) else None,
                                                           request.state.csrf_token):
        raise HTTPException(403, "zdg ui: the form's CSRF token is missing or stale; reload the page and try again")


def token_for(host: str, env_token: str | None) -> str | None:
    """The token requests must carry: $ZDG_UI_TOKEN when set (on loopback too: what API clients send as Bearer);
    unset, none on loopback and a new random one elsewhere. A name is resolved (OSError when it cannot be)."""
    return env_token or (None if is_loopback(host) else secrets.token_urlsafe(18))

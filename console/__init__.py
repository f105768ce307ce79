"""The web console's files, and how a front door serves them under `/console/`.

The console is plain HTML, ES modules and CSS in `console/static/` (no build step, nothing
fetched from another origin). Both front doors serve it from the same origin as the API
(the gateway Lambda behind API Gateway, and the stream front door), so it needs no CORS
and no infrastructure of its own; it calls the API at `../v1` from where it is served.

`serve` is the whole of it: a request path in, a status, headers and body out. It serves
only the files that are in `static/` (an allow-list read once, flat: no folders), so no
path can reach another file, and every answer carries its content type, an ETag and
`Cache-Control: no-cache` (the browser revalidates, and an unchanged file costs a 304),
plus a Content-Security-Policy that lets the page load and call nothing but its own origin.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from services.errors import APIError, MethodNotAllowed, NotFound

PREFIX = "/console"
STATIC = Path(__file__).with_name("static")
INDEX = "index.html"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@dataclass(frozen=True, slots=True)
class Answer:
    """What a front door sends back. `body` is text (UTF-8) for every file served, so a
    Lambda proxy response needs no base64."""

    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _File:
    content_type: str
    body: bytes
    etag: str


@functools.cache
def files() -> dict[str, _File]:
    """The files the console is made of, by name, read once per process."""
    found: dict[str, _File] = {}
    for path in sorted(STATIC.iterdir()):
        content_type = TYPES.get(path.suffix)
        if path.is_file() and content_type is not None:
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            found[path.name] = _File(content_type, body, etag)
    return found


def serve(path: str, method: str = "GET", if_none_match: str | None = None) -> Answer:
    """The answer to `method path` (a path that starts with `/console`, as the front door
    received it). `/console` redirects to `/console/` (relatively, so a stage prefix in
    front of it stays), `/console/` is the page, and `/console/<name>` a file of it."""
    if method not in ("GET", "HEAD"):
        return _error(MethodNotAllowed(f"Method {method} is not allowed on {path}; use GET."))
    if path == PREFIX:
        return Answer(308, "text/plain; charset=utf-8", b"", {"location": "console/"})
    if not path.startswith(PREFIX + "/"):
        return _error(NotFound(f"Unknown request URL: {method} {path}."))
    name = path[len(PREFIX) + 1 :] or INDEX
    found = files().get(name)
    if found is None:
        return _error(NotFound(f"The console has no file named {json.dumps(name)}."))
    headers = {"etag": found.etag, "cache-control": "no-cache", **SECURITY_HEADERS}
    if if_none_match is not None and found.etag in (t.strip() for t in if_none_match.split(",")):
        return Answer(304, found.content_type, b"", headers)
    return Answer(200, found.content_type, found.body, headers)  # a server drops it for HEAD


def _error(error: APIError) -> Answer:
    headers = {"allow": "GET, HEAD"} if error.status == 405 else {}
    return Answer(error.status, "application/json", error.json(), headers)

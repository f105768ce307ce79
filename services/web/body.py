"""Request bodies as JSON, read strictly: the one parser the front doors and the worker use.

A body is refused with 400 and the OpenAI error shape, before anything reads it, when it

- is empty (`invalid_body`), or not a JSON object where one is required (`invalid_body`);
- is not JSON (`invalid_json`), including:
  - text that is not UTF-8 (RFC 8259 section 8.1: JSON exchanged between systems is UTF-8);
  - a lone surrogate such as `"\\ud800"`, which names no character and which DynamoDB,
    S3 and every UTF-8 encoder refuse (RFC 7493, I-JSON, forbids it);
- nests arrays and objects more than `MAX_JSON_DEPTH` deep (`json_too_deep`): no request
  of this API needs more, and code that walks a value recursively (the standard library's
  encoder and decoder, `repr`, pydantic) fails on deep values with a RecursionError.

orjson refuses invalid UTF-8 and lone surrogates, and never recurses without a bound (it
stops at 1,024 levels); the depth is then checked without recursion. Plain Python and
orjson only: the gateway Lambda imports this.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson

from services.errors import InvalidRequest

MAX_JSON_DEPTH = 64


def parse_json(data: bytes) -> Any:
    """The JSON value of a request body, or a 400 saying what is wrong with it."""
    if not data:
        raise InvalidRequest("The request body is empty; send a JSON object.", code="invalid_body")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc):
            raise too_deep() from None
        raise InvalidRequest(_describe(exc), code="invalid_json") from None
    # Fewer brackets than the limit cannot nest deeper than it (the usual small body).
    if data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH and (
        json_depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH
    ):
        raise too_deep()
    return value


def json_object(data: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object."""
    value = parse_json(data)
    if not isinstance(value, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    return value


def known_fields(body: Any, allowed: Collection[str]) -> dict[str, Any]:
    """`body` (a parsed request body) if it is a JSON object with no field outside
    `allowed`; else the 400 that names the (alphabetically) first unknown field."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidRequest(
            f"Unrecognized request argument supplied: {unknown[0]}",
            param=unknown[0],
            code="unknown_parameter",
        )
    return body


def optional_json_object(data: bytes) -> dict[str, Any]:
    """A JSON object, or `{}` for an empty body (routes whose fields are all optional)."""
    return json_object(data) if data else {}


def json_depth(value: Any, limit: int) -> int:
    """How deep `value` nests lists and dicts (a scalar is 0, `[]` is 1), counting no
    further than `limit + 1`. Level by level, without recursion: any value is measured
    safely."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return depth
        below = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
    return depth


def too_deep() -> InvalidRequest:
    return InvalidRequest(
        f"The request body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep.",
        code="json_too_deep",
    )


def _describe(exc: orjson.JSONDecodeError) -> str:
    reason = str(exc)
    if "UTF-8" in reason:
        return "The request body is not valid JSON: it is not UTF-8 text."
    if "surrogate" in reason:
        return (
            "The request body is not valid JSON: it has a lone UTF-16 surrogate escape "
            f"(such as \\ud800), which encodes no character ({reason})."
        )
    return f"The request body is not valid JSON: {reason}."

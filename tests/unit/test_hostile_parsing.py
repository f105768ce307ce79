"""The shared parsing and validation layer against hostile input (issue 15): the strict JSON
body parser, query parameters and headers, bounded error messages and the request head's
limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.errors import MAX_ECHO_CHARS, MAX_MESSAGE_CHARS, InvalidRequest, NotFound
from services.models.catalogue import Catalogue, CatalogueConfig
from services.providers.local import LocalProvider
from services.web import head
from services.web.body import MAX_JSON_DEPTH, json_depth, json_object, known_fields, parse_json
from services.web.params import forwarded_headers, idempotency_key, page_limit
from services.web.sse import parse_after


def refused(call: Any, *args: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        call(*args)
    return caught.value


# -- the JSON body parser ----------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 5_000, 100_000])
def test_json_nested_past_the_named_depth_is_a_400(depth: int) -> None:
    error = refused(parse_json, nested(depth))
    assert (error.status, error.code) == (400, "json_too_deep")
    assert str(MAX_JSON_DEPTH) in error.message


def test_json_at_the_named_depth_is_read() -> None:
    assert json_depth(parse_json(nested(MAX_JSON_DEPTH)), MAX_JSON_DEPTH) == MAX_JSON_DEPTH


@pytest.mark.parametrize(
    "body",
    [
        b'{"title": "\\ud800"}',  # a lone high surrogate
        b'{"title": "\\udc00"}',  # a lone low surrogate
        b'{"title": "\\ud800\\u0041"}',  # a high surrogate followed by no low one
        b'{"ti\\ud800tle": "x"}',  # in a key
    ],
)
def test_a_lone_surrogate_is_a_400(body: bytes) -> None:
    error = refused(json_object, body)
    assert (error.status, error.code) == (400, "invalid_json")
    assert "surrogate" in error.message


def test_a_surrogate_pair_is_a_character() -> None:
    assert json_object(b'{"t": "\\ud83d\\ude00"}') == {"t": "\U0001f600"}


@pytest.mark.parametrize(
    "body",
    [b'{"title": "\xff\xfe"}', b"\xff", b'{"t": "\xed\xa0\x80"}', b'{"t": "\xc3"}'],
    ids=["ff-fe", "ff", "encoded-surrogate", "truncated"],
)
def test_a_body_that_is_not_utf8_is_a_400(body: bytes) -> None:
    error = refused(json_object, body)
    assert (error.status, error.code) == (400, "invalid_json")
    assert "UTF-8" in error.message


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "invalid_body"),
        (b"[]", "invalid_body"),
        (b"{", "invalid_json"),
        (b"NaN", "invalid_json"),
    ],
)
def test_other_bodies_keep_their_errors(body: bytes, code: str) -> None:
    assert refused(json_object, body).code == code


def test_known_fields_names_the_first_unknown_field_and_refuses_a_non_object() -> None:
    assert known_fields({"title": "x"}, {"title", "model"}) == {"title": "x"}
    with pytest.raises(InvalidRequest) as unknown:
        known_fields({"zeta": 1, "alpha": 2, "title": "x"}, {"title"})
    assert (unknown.value.code, unknown.value.param) == ("unknown_parameter", "alpha")
    for body in ([], "text", None, 3):
        with pytest.raises(InvalidRequest) as refused:
            known_fields(body, {"title"})
        assert refused.value.code == "invalid_body"


def test_depth_is_measured_without_recursion() -> None:
    deep: Any = []
    for _ in range(200_000):
        deep = [deep]
    assert json_depth(deep, 64) == 65
    assert json_depth({"a": [1, {"b": []}], "c": "x"}, 64) == 4
    assert json_depth("scalar", 64) == 0


# -- query parameters and headers --------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["²", "\u0661\u0660", "1²", "\U0001d7d9", "+5", " 5", "5 ", "-1", "0", "101", "1e2"]
)
def test_limit_accepts_ascii_digits_only(raw: str) -> None:
    error = refused(page_limit, raw)
    assert (error.status, error.param) == (400, "limit")


def test_limit_in_range() -> None:
    assert (page_limit(None), page_limit("1"), page_limit("100")) == (20, 1, 100)


@pytest.mark.parametrize("raw", ["²", "\u0661", "\u00c2\u00b2", "é", "5x", "", "12345678901"])
def test_an_event_number_is_ascii_digits(raw: str) -> None:
    for header, after in ((raw, None), (None, raw)):
        error = refused(parse_after, header, after)
        assert (error.status, error.code) == (400, "invalid_last_event_id")


def test_a_padded_last_event_id_is_its_number() -> None:
    assert parse_after(" 5 ", None) == 5
    assert parse_after("\t7\t", None) == 7
    # What a front door passes on is the number, never the padding the worker would refuse.
    assert forwarded_headers({"last-event-id": " 5 "}) == {"last-event-id": "5"}


@pytest.mark.parametrize("raw", ["é", "\u00c2\u00b2", "a\x00b", "a\nb", "", "   ", "k" * 256])
def test_an_idempotency_key_is_printable_ascii(raw: str) -> None:
    error = refused(idempotency_key, raw)
    assert (error.status, error.param) == (400, "Idempotency-Key")
    with pytest.raises(InvalidRequest):
        forwarded_headers({"idempotency-key": raw})


def test_an_idempotency_key_keeps_inner_spaces_and_loses_padding() -> None:
    assert idempotency_key("  order 42  ") == "order 42"
    assert forwarded_headers({"idempotency-key": "k" * 255}) == {"idempotency-key": "k" * 255}


# -- bounded error messages --------------------------------------------------------------


def test_an_error_never_echoes_a_huge_value() -> None:
    model = "m" * 2_000_000
    catalogue = Catalogue({"local": LocalProvider()}, CatalogueConfig())
    with pytest.raises(NotFound) as caught:
        catalogue.resolve(model)
    body = caught.value.json()
    assert len(body) < MAX_MESSAGE_CHARS + 200
    message = json.loads(body)["error"]["message"]
    assert "m" * MAX_ECHO_CHARS not in message and "mmm…" in message
    assert message.endswith("GET /v1/models lists the models you can use.")


def test_every_error_is_bounded_even_with_spaces() -> None:
    error = InvalidRequest("x " * 1_000_000, param="p" * 10_000)
    assert len(error.message) == MAX_MESSAGE_CHARS and error.message.endswith("…")
    assert error.param is not None and len(error.param) == MAX_ECHO_CHARS


# -- the request head --------------------------------------------------------------------


def test_a_header_over_api_gateways_limit_is_431() -> None:
    with pytest.raises(head.HeadersTooLarge) as caught:
        head.check_head("GET", "/v1/models", 0, [b"a" * 2_000_000])
    assert caught.value.status == 431
    head.check_head("GET", "/v1/models", 0, [b"a" * head.MAX_HEADER_VALUE_BYTES])


def test_too_many_headers_is_431() -> None:
    with pytest.raises(head.HeadersTooLarge):
        head.check_head("GET", "/v1/models", 0, [b"v"] * 10_000)
    head.check_head("GET", "/v1/models", 0, [b"v"] * head.MAX_HEADERS)


def test_a_url_over_api_gateways_limit_is_414() -> None:
    with pytest.raises(head.URITooLong) as caught:
        head.check_head("GET", "/v1/runs/" + "r" * head.MAX_URL_CHARS, 0, [])
    assert caught.value.status == 414
    with pytest.raises(head.URITooLong):
        head.check_head("GET", "/v1/runs", head.MAX_URL_CHARS, [])


@pytest.mark.parametrize("path", ["/v1/runs/run_\x00abc", "/v1/tools/a\nb", "/v1/agents/\x7f"])
def test_a_control_character_in_the_path_is_404(path: str) -> None:
    with pytest.raises(NotFound):
        head.check_head("GET", path, 0, [])


def test_the_gateway_event_is_checked_the_same_way() -> None:
    event = {
        "httpMethod": "GET",
        "path": "/v1/models",
        "multiValueHeaders": {f"x-h{i}": ["v"] for i in range(200)},
    }
    with pytest.raises(head.HeadersTooLarge):
        head.check_proxy_event(event)
    event["multiValueHeaders"] = {"x-big": ["a" * 20_000]}
    with pytest.raises(head.HeadersTooLarge):
        head.check_proxy_event(event)
    event = {"httpMethod": "GET", "path": "/v1/x", "headers": {"a": "b"}}
    head.check_proxy_event(event)

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.canonical import ImagePart, TextPart, ToolCall
from services.errors import InvalidRequest
from services.wire.openai import parse_chat_json, parse_chat_request, to_canonical

USER = {"role": "user", "content": "hi"}


def error_of(body: Any) -> dict[str, Any]:
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(body)
    return info.value.body()["error"]


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ([1], "invalid_body", None),
        ({"messages": [USER]}, "missing_required_parameter", "model"),
        ({"model": "m"}, "missing_required_parameter", "messages"),
        ({"model": "m", "messages": []}, "invalid_value", "messages"),
        (
            {"model": "m", "messages": [{"role": "wizard", "content": "x"}]},
            "invalid_value",
            "messages[0].role",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": 5}]},
            "invalid_value",
            "messages[0].content",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "invalid_value",
            "messages[0].content[0]",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            },
            "missing_required_parameter",
            "messages[0].content[0].image_url.url",
        ),
        ({"model": "m", "messages": [USER], "temperature": 3}, "invalid_value", "temperature"),
        ({"model": "m", "messages": [USER], "max_tokens": 0}, "invalid_value", "max_tokens"),
        ({"model": "m", "messages": [USER], "bogus": 1}, "unknown_parameter", "bogus"),
        ({"model": "m", "messages": [USER], "n": 2}, "unsupported_parameter", "n"),
        ({"model": "m", "messages": [USER], "logprobs": True}, "unsupported_parameter", "logprobs"),
        (
            {"model": "m", "messages": [USER], "response_format": {"type": "json_object"}},
            "unsupported_parameter",
            "response_format",
        ),
        (
            {"model": "m", "messages": [USER], "stream_options": {"include_usage": True}},
            "invalid_value",
            "stream_options",
        ),
    ],
)
def test_bad_requests_name_the_field(body: Any, code: str, param: str | None) -> None:
    error = error_of(body)
    assert error["code"] == code
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def test_defaults_that_change_nothing_are_accepted() -> None:
    parse_chat_request(
        {"model": "m", "messages": [USER], "n": 1, "logprobs": False, "store": False, "seed": 7}
    )


def test_translation_to_canonical_keeps_everything() -> None:
    parsed = parse_chat_request(
        {
            "model": "local/simulator",
            "messages": [
                {"role": "developer", "content": "rules"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "stop": "END",
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
            ],
            "tool_choice": "auto",
        }
    )
    canonical = to_canonical(parsed, "simulator")
    assert canonical.model == "simulator"
    assert canonical.max_tokens == 20  # max_completion_tokens supersedes max_tokens
    assert canonical.stop == ["END"]
    assert [m.role for m in canonical.messages] == ["developer", "user", "assistant", "tool"]
    assert canonical.messages[1].content == [
        TextPart("look"),
        ImagePart("data:image/png;base64,AAAA", "low"),
    ]
    assert canonical.messages[2].tool_calls == [ToolCall("c1", "f", "{}")]
    assert canonical.messages[3].tool_call_id == "c1"
    assert canonical.tools[0].name == "f"
    assert canonical.tool_choice == "auto"


# The hot path validates the JSON text directly and falls back to the dict path for errors.

VALID_BODIES: list[dict[str, Any]] = [
    {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": "12",  # lax, as the dict path is
        "temperature": 0.5,
        "stop": ["x"],
        "n": 1,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    },
]


@pytest.mark.parametrize("body", VALID_BODIES)
def test_a_valid_body_is_the_same_request_from_its_json(body: dict[str, Any]) -> None:
    parsed = parse_chat_json(orjson.dumps(body))
    assert parsed is not None and parsed == parse_chat_request(body)


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1]", b'{"model": "m"}', b'{"model": "m", "messages": [], "x": 1}'],
)
def test_an_invalid_body_is_left_to_the_path_that_names_the_error(raw: bytes) -> None:
    assert parse_chat_json(raw) is None


def test_an_unsupported_parameter_is_refused_on_the_json_path_too() -> None:
    raw = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2})
    with pytest.raises(InvalidRequest) as info:
        parse_chat_json(raw)
    assert info.value.param == "n"

"""The simulator's tool use (services/providers/_simulated_tools.py): which tool it calls,
with what arguments, and how it answers from the results. Deterministic, never a model."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import pytest

from services.agents.actions import ACTIONS, ASK_USER_DEFINITION, AskUserInput
from services.providers.base import (
    CompletionRequest,
    Finish,
    Message,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
    UsageReport,
)
from services.providers.local import LocalProvider
from services.tools import registry
from services.tools.base import Tool

DOC = "doc_" + "0123456789abcdef01234567"
OTHER = "doc_" + "89abcdef0123456789abcdef"
EVERY_TOOL: dict[str, Tool] = {**registry.tools(), **ACTIONS}
LABEL = "[local simulator, not a model]"


def user(text: str) -> Message:
    return Message("user", [TextPart(text)])


def called(call_id: str, name: str, arguments: dict[str, Any]) -> Message:
    return Message("assistant", [], tool_calls=[ToolCall(call_id, name, json.dumps(arguments))])


def result(call_id: str, output: Any) -> Message:
    return Message("tool", [TextPart(json.dumps(output))], tool_call_id=call_id)


def ask(messages: list[Message], *tools: ToolDefinition, **kwargs: Any) -> CompletionRequest:
    system = Message("system", [TextPart("You help.")])
    return CompletionRequest("simulator", [system, *messages], tools=list(tools), **kwargs)


def complete(request: CompletionRequest) -> Any:
    return asyncio.run(LocalProvider().complete(request))


def definition(name: str) -> ToolDefinition:
    return ASK_USER_DEFINITION if name == "ask_user" else EVERY_TOOL[name].definition()


def check(name: str, arguments: str) -> dict[str, Any]:
    """The call's arguments are valid for the tool's JSON Schema and for the tool itself."""
    parsed: dict[str, Any] = json.loads(arguments)
    jsonschema.validate(parsed, definition(name).parameters)
    if name == "ask_user":
        AskUserInput.model_validate(parsed)
    else:
        EVERY_TOOL[name].parse_input(parsed)
    return parsed


FOUND = {
    "results": [
        {"document_id": DOC, "filename": "fenders.txt", "snippet": "New fenders."},
        {"document_id": OTHER, "filename": "cake.md", "snippet": "Flour."},
    ],
    "compared": 2,
}
SEARCHED = [
    user("What does the north quay need?"),
    called("c1", "search_documents", {"query": "quay"}),
    result("c1", FOUND),
]
# The same, found by a tool none of the tested tools is: each of them is still to call.
LOOKED_UP = [
    user("What does the north quay need?"),
    called("c1", "lookup", {}),
    result("c1", FOUND),
]


@pytest.mark.parametrize("name", [*EVERY_TOOL, "ask_user"])
def test_every_tool_is_called_with_arguments_valid_for_its_schema(name: str) -> None:
    """With ids seen in an earlier result and the person's words, every registered tool
    (and the agent actions) gets a call the tool itself accepts."""
    completion = complete(ask(LOOKED_UP, definition(name)))
    assert completion.stop_reason == "tool_calls"
    [call] = completion.tool_calls
    assert call.name == name
    arguments = check(name, call.arguments)
    if "document_id" in arguments:
        assert arguments["document_id"] == DOC  # the best match the search returned


@pytest.mark.parametrize("name", [*EVERY_TOOL, "ask_user"])
def test_without_ids_a_tool_is_called_from_the_words_or_not_at_all(name: str) -> None:
    completion = complete(ask([user("Tides and turbines")], definition(name)))
    if completion.tool_calls:
        arguments = check(name, completion.tool_calls[0].arguments)
        assert DOC not in json.dumps(arguments)
    else:
        # Only a tool that needs a document (or an image) cannot be called from words.
        assert name in {"extract_text", "classify_image", "generate_alt_text", "move_documents"}
        assert completion.stop_reason == "stop" and completion.text.startswith(LABEL)


def test_docs_chat_flow_search_then_read_then_answer_citing() -> None:
    tools = [definition("search_documents"), definition("extract_text")]
    first = complete(ask([user("What does the north quay need?")], *tools))
    assert [(c.name, json.loads(c.arguments)) for c in first.tool_calls] == [
        ("search_documents", {"query": "What does the north quay need?"})
    ]
    assert first.text == f"{LABEL} Calling search_documents."

    second = complete(ask(SEARCHED, *tools))
    assert [(c.name, json.loads(c.arguments)) for c in second.tool_calls] == [
        ("extract_text", {"document_id": DOC})
    ]

    read = [
        *SEARCHED,
        called("c2", "extract_text", {"document_id": DOC}),
        result("c2", {"document_id": DOC, "filename": "fenders.txt", "text": "New fenders."}),
    ]
    answer = complete(ask(read, *tools))
    assert answer.tool_calls == [] and answer.stop_reason == "stop"
    assert answer.text.startswith(f'{LABEL} You said "What does the north quay need?"')
    assert f"fenders.txt [{DOC}]" in answer.text and f"cake.md [{OTHER}]" in answer.text
    assert answer == complete(ask(read, *tools))  # deterministic


def test_a_new_message_starts_the_tools_over() -> None:
    tools = [definition("search_documents")]
    answered = [*SEARCHED, Message("assistant", [TextPart("Fenders.")]), user("And the cake?")]
    [call] = complete(ask(answered, *tools)).tool_calls
    assert json.loads(call.arguments) == {"query": "And the cake?"}


def organizer(*after: Message) -> list[Message]:
    """asset_organizer's conversation after its declared steps: two images classified,
    the person's answer to the question."""
    return [
        user(f"Organize my 2 images into folders.\n- {DOC}: cat.png\n- {OTHER}: beach.png"),
        Message(
            "assistant",
            [],
            tool_calls=[
                ToolCall("p0", "classify_image", json.dumps({"document_id": DOC})),
                ToolCall("p1", "classify_image", json.dumps({"document_id": OTHER})),
            ],
        ),
        result("p0", {"labels": [{"label": "Cat", "confidence": 0.9}]}),
        result("p1", {"labels": [{"label": "sandy beach", "confidence": 0.8}]}),
        called("q", "ask_user", {"question": "How?"}),
        result("q", {"answer": "By subject, please."}),
        *after,
    ]


ORGANIZER_TOOLS = ("classify_image", "ask_user", "move_documents")


def test_asset_organizer_flow_proposes_every_move_then_revises_on_feedback() -> None:
    tools = [definition(n) for n in ORGANIZER_TOOLS]
    [proposal] = complete(ask(organizer(), *tools)).tool_calls
    assert proposal.name == "move_documents"
    assert check("move_documents", proposal.arguments) == {
        "moves": [
            {"document_id": DOC, "folder": "subject/cat"},
            {"document_id": OTHER, "folder": "subject/sandy-beach"},
        ]
    }
    feedback = "The user did not approve this call and asked for changes: Use archive folders."
    changed = organizer(
        Message("assistant", [], tool_calls=[proposal]),
        result(proposal.id, {"error": {"message": feedback, "code": "changes_requested"}}),
    )
    [revised] = complete(ask(changed, *tools)).tool_calls
    assert revised.name == "move_documents" and revised.id != proposal.id
    assert [m["folder"] for m in check("move_documents", revised.arguments)["moves"]] == [
        "archive/cat",
        "archive/sandy-beach",
    ]
    moved = {
        "moved": [
            {"document_id": DOC, "filename": "cat.png", "from_folder": "", "to_folder": "a/cat"}
        ],
        "count": 1,
    }
    done = organizer(Message("assistant", [], tool_calls=[revised]), result(revised.id, moved))
    report = complete(ask(done, *tools))
    assert report.tool_calls == []
    assert f"cat.png [{DOC}] moved to a/cat/" in report.text


def test_a_rejected_or_failed_call_is_not_made_again() -> None:
    tools = [definition("search_documents")]
    failed = [
        user("Quay?"),
        called("c1", "search_documents", {"query": "Quay?"}),
        result("c1", {"error": {"message": "index offline", "code": "tool_failed"}}),
    ]
    answer = complete(ask(failed, *tools))
    assert answer.tool_calls == []
    assert "search_documents did not run: index offline" in answer.text


def test_tool_choice_is_followed() -> None:
    tools = [definition("search_documents"), definition("extract_text")]
    assert complete(ask(SEARCHED, *tools, tool_choice="none")).tool_calls == []
    named = {"type": "function", "function": {"name": "search_documents"}}
    [again] = complete(ask(SEARCHED, *tools, tool_choice=named)).tool_calls
    assert again.name == "search_documents"  # named: called although it was called already
    read = [*SEARCHED, called("c2", "extract_text", {"document_id": DOC}), result("c2", {})]
    [forced] = complete(ask(read, *tools, tool_choice="required")).tool_calls
    assert forced.name == "search_documents"
    assert complete(ask(read, *tools)).tool_calls == []  # auto: everything was called


def test_a_tool_call_streams_as_deltas_that_add_up_to_the_completion() -> None:
    request = ask(SEARCHED, definition("extract_text"))
    whole = complete(request)

    async def events() -> list[Any]:
        return [e async for e in LocalProvider().stream(request)]

    streamed = asyncio.run(events())
    text = "".join(e.text for e in streamed if isinstance(e, TextDelta))
    deltas = [e for e in streamed if isinstance(e, ToolCallDelta)]
    assert text == whole.text
    assert len(deltas) == 2 and {d.index for d in deltas} == {0}
    assert (deltas[0].id, deltas[0].name) == (whole.tool_calls[0].id, "extract_text")
    assert "".join(d.arguments for d in deltas) == whole.tool_calls[0].arguments
    assert [e for e in streamed if isinstance(e, Finish)] == [Finish("tool_calls")]
    [usage] = [e.usage for e in streamed if isinstance(e, UsageReport)]
    assert usage == whole.usage and usage.output_tokens > 0


def test_without_tools_the_reply_is_unchanged() -> None:
    completion = complete(ask([user("hello")]))
    assert completion.tool_calls == [] and completion.text.startswith(f"{LABEL} Turn 1")

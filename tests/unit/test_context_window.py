"""Leaving out the oldest turns when a conversation outgrows the model's context window."""

from __future__ import annotations

from services.chat.context_window import estimate_tokens, fit, reply_budget
from services.providers.base import CompletionRequest, Message, TextPart, ToolCall
from services.providers.local import LocalProvider, _plan


def text(role: str, words: int, tag: str = "w") -> Message:
    return Message(role, [TextPart(" ".join([tag] * words))])  # type: ignore[arg-type]


SYSTEM = [text("system", 5, "sys")]


def tokens(messages: list[Message]) -> int:
    return sum(estimate_tokens(m) for m in messages)


def test_the_estimate_is_the_simulators_count() -> None:
    call = Message("assistant", [], tool_calls=[ToolCall("c1", "look up", '{"q": "a b"}')])
    messages = [*SYSTEM, text("user", 7), text("assistant", 4), call]
    usage = _plan(CompletionRequest("simulator", messages), 1).usage
    assert tokens(messages) == usage.input_tokens


def test_everything_is_kept_when_it_fits() -> None:
    history = [text("user", 10), text("assistant", 10)]
    new = [text("user", 3)]
    fitted = fit(SYSTEM, history, new, budget=1000)
    assert fitted.messages == [*SYSTEM, *history, *new] and fitted.trimmed == 0


def test_oldest_turns_go_first_system_and_newest_stay() -> None:
    history = [text("user", 10, f"u{i}") if i % 2 == 0 else text("assistant", 10) for i in range(6)]
    new = [text("user", 3, "new")]
    # system 8 + new 6 + each message 13: room for exactly one old turn (26).
    fitted = fit(SYSTEM, history, new, budget=8 + 6 + 26)
    assert fitted.trimmed == 4
    assert fitted.messages == [*SYSTEM, *history[4:], *new]
    assert tokens(fitted.messages) <= 40


def test_a_tool_call_leaves_with_its_results() -> None:
    call = Message("assistant", [], tool_calls=[ToolCall("c1", "lookup", "{}")])
    result = Message("tool", [TextPart("42")], tool_call_id="c1")
    history = [text("user", 2), call, result, text("assistant", 2), text("user", 2)]
    history.append(text("assistant", 2))
    new = [text("user", 2)]
    budget = tokens([*SYSTEM, *history[4:], *new])
    fitted = fit(SYSTEM, history, new, budget=budget)
    assert fitted.trimmed == 4  # the whole first turn: user, call, result, answer
    assert call not in fitted.messages and result not in fitted.messages


def test_tool_results_keep_the_call_they_answer() -> None:
    call = Message("assistant", [], tool_calls=[ToolCall("c1", "lookup", "{}")])
    history = [text("user", 50), text("assistant", 50), text("user", 2), call]
    results = [Message("tool", [TextPart("42")], tool_call_id="c1")]
    fitted = fit([], history, results, budget=1)
    assert fitted.messages == [history[2], call, *results]
    assert fitted.trimmed == 2


def test_the_newest_message_stays_even_if_too_big() -> None:
    new = [text("user", 500)]
    fitted = fit(SYSTEM, [text("user", 1), text("assistant", 1)], new, budget=10)
    assert fitted.messages == [*SYSTEM, *new] and fitted.trimmed == 2


def test_reply_budget() -> None:
    assert reply_budget(8192, None) == 1024
    assert reply_budget(200, None) == 50
    assert reply_budget(200, 20) == 20


def test_the_simulator_window_is_configurable() -> None:
    from services.providers.local import create

    assert LocalProvider().context_window("simulator") == 8192
    assert create({"SWITCHBOARD_LOCAL_CONTEXT_TOKENS": "200"}).context_window("simulator") == 200

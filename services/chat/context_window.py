"""Fitting a conversation's history into a model's context window.

Tokens are estimated as the `local` simulator counts them (whitespace-separated words, plus
3 per message for the chat format's framing), an estimate that is stable and cheap.
When the messages do not fit the window minus the reply budget, whole turns are left out,
oldest first. A turn is a user message and everything after it up to the next user
message (the assistant's replies, its tool calls and their results), so a tool call is
always kept or left out together with its results. The system prompt and the newest turn
are always kept, even if they alone do not fit: the provider then says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.canonical import Message, estimate_tokens

DEFAULT_REPLY_TOKENS = 1024


def reply_budget(window: int, max_tokens: int | None) -> int:
    """The tokens kept free for the reply: `max_tokens`, or a share of the window."""
    if max_tokens is not None:
        return max_tokens
    return min(DEFAULT_REPLY_TOKENS, window // 4)


@dataclass(frozen=True, slots=True)
class Fitted:
    messages: list[Message]
    trimmed: int


def fit(
    system: list[Message], history: list[Message], new: list[Message], *, budget: int
) -> Fitted:
    """`system + kept history + new`, leaving out the oldest turns of `history` until the
    estimate is within `budget` tokens. When `new` holds tool results, the history's last
    turn (the one with the tool call they answer) is kept with them."""
    turns = _turns(history)
    pinned: list[Message] = []
    if new and new[0].role != "user" and turns:
        pinned = turns.pop()
    total = sum(estimate_tokens(m) for m in [*system, *pinned, *new])
    total += sum(estimate_tokens(m) for turn in turns for m in turn)
    trimmed = 0
    while turns and total > budget:
        dropped = turns.pop(0)
        total -= sum(estimate_tokens(m) for m in dropped)
        trimmed += len(dropped)
    kept = [m for turn in turns for m in turn]
    return Fitted([*system, *kept, *pinned, *new], trimmed)


def _turns(history: list[Message]) -> list[list[Message]]:
    turns: list[list[Message]] = []
    for message in history:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns

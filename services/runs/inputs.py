"""Human input to a run: what a run waits for, and the answers it accepts.

A kind that needs a person (an agent asking a clarifying question, or asking for approval
before a tool with side effects) saves its state in a checkpoint and raises
`AwaitingInput`. The owner then records the run as `awaiting_input` with its
`pending_input`, releases the lease and lets go of the queue message: a run that waits
holds no worker, and may wait for days. `POST /v1/runs/{id}/input` checks the answer's
shape against `pending_input` (`parse_answer`), stores it in the run, and queues the run
again; the next worker resumes from the checkpoint with the answer in `Run.answer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from services.errors import InvalidRequest

InputType = Literal["question", "approval"]
MAX_ANSWER_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class PendingInput:
    """What the run asks. `detail` carries what the person needs to decide (for an
    approval: the tool and its arguments)."""

    type: InputType
    prompt: str
    id: str  # what the answer is to (for an agent: the tool call that waits)
    options: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"id": self.id, "type": self.type, "prompt": self.prompt}
        if self.options:
            shown["options"] = list(self.options)
        if self.detail:
            shown["detail"] = self.detail
        shown["answer_with"] = (
            {"input": "<your answer>"}
            if self.type == "question"
            else {"approve": "true | false", "feedback": "<optional: what to change>"}
        )
        return shown


class AwaitingInput(Exception):  # a signal to the run's owner, not a failure
    """Raised by a kind, after its checkpoint, to wait for a person."""

    def __init__(self, pending: PendingInput) -> None:
        super().__init__(pending.prompt)
        self.pending = pending


def parse_answer(pending: dict[str, Any], body: Any) -> dict[str, Any]:
    """The answer in `body` to `pending` (a `PendingInput.public()`), or a 400 naming the
    field that is wrong. A question takes `{"input": str}`; an approval takes
    `{"approve": bool, "feedback"?: str}`."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_body")
    allowed = {"input"} if pending.get("type") == "question" else {"approve", "feedback"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        expected = " and ".join(f"'{name}'" for name in sorted(allowed))
        raise InvalidRequest(
            f"The run is waiting for {'an answer' if 'input' in allowed else 'an approval'}: "
            f"send {expected}, not '{unknown[0]}'.",
            param=unknown[0],
            code="unknown_parameter",
        )
    if pending.get("type") == "question":
        text = body.get("input")
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest(
                "'input' must be a non-empty string: the answer to the run's question.",
                param="input",
                code="invalid_value" if "input" in body else "missing_required_parameter",
            )
        _check_length(text, "input")
        return {"to": pending.get("id"), "type": "question", "input": text}
    approve = body.get("approve")
    if not isinstance(approve, bool):
        raise InvalidRequest(
            "'approve' must be true or false.",
            param="approve",
            code="invalid_value" if "approve" in body else "missing_required_parameter",
        )
    feedback = body.get("feedback")
    if feedback is not None and not isinstance(feedback, str):
        raise InvalidRequest("'feedback' must be a string.", param="feedback", code="invalid_value")
    _check_length(feedback or "", "feedback")
    feedback = (feedback or "").strip()
    return {"to": pending.get("id"), "type": "approval", "approve": approve, "feedback": feedback}


def _check_length(text: str, param: str) -> None:
    if len(text) > MAX_ANSWER_CHARS:
        raise InvalidRequest(
            f"'{param}' is longer than {MAX_ANSWER_CHARS} characters.",
            param=param,
            code="string_above_max_length",
        )

"""The simulator's tool use (`services.providers.local`): when a request offers tools,
which one it calls and with what arguments, and how it answers from their results.

It is a fixed procedure, not a model, and the same conversation always gets the same
answer:

- Since the person's last message, each offered tool is called at most once, in the order
  the tools are offered, one call per answer; a tool whose arguments cannot be built from
  the conversation is skipped. A call the person sent back with changes (an error of code
  `changes_requested`) does not count: the tool is proposed again, with the new words.
- When every tool has been called (or skipped), the answer reads the results, citing the
  documents they name as `[doc_...]`.
- `tool_choice` is followed: `none` calls nothing, a named function calls that one,
  `required` calls a tool even if it was called already.

Arguments are an instance of the tool's JSON Schema, built from the conversation: a
document id field takes an id seen in it (the latest tool result's first, else the ids
of earlier calls and of the person's messages), an array of moves or ids takes every id
seen, text fields take the person's latest words (`question` and `folder` are phrased for
what they are), numbers their default or minimum, enums their first value. Optional fields
are left out, bar one content source (`document_id`, else `text`) where an object has no
required one: tools that take "a text or a document" want exactly one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from services.providers.base import CompletionRequest, Message, ToolCall, ToolDefinition

LABEL = "[local simulator, not a model]"
_IDS = re.compile(r"\bdoc_[A-Za-z0-9]+")
_WORDS = re.compile(r"[A-Za-z][A-Za-z0-9-]{2,}")
# Words that say nothing about how to sort things (the criterion is the first other word).
_STOPWORDS = frozenset((
    "the", "and", "for", "with", "into", "from", "that", "this", "these", "those", "them",
    "they", "their", "please", "thanks", "thank", "you", "your", "yours", "our", "ours",
    "all", "any", "some", "each", "every", "per", "via", "use", "using", "put", "keep",
    "want", "would", "like", "could", "should", "can", "will", "not", "did", "does",
    "done", "have", "has", "had", "are", "was", "were", "been", "its", "user", "asked",
    "ask", "approve", "approved", "changes", "change", "call", "instead", "what", "how",
    "which", "where", "when", "why", "who",
))  # fmt: skip
_SOURCES = ("document_id", "text", "image_url")
_ECHO = 120
_MISSING = object()


@dataclass
class _Call:
    """A tool call in the conversation, with its result once it has one."""

    call: ToolCall
    after_last_user: bool
    position: int
    result: Any = None
    answered: bool = False
    answered_at: int = -1


@dataclass
class Conversation:
    """What the simulator reads from a request's messages."""

    messages: list[Message]
    calls: list[_Call] = field(default_factory=list)
    last_user: int = -1

    @classmethod
    def of(cls, messages: list[Message]) -> Conversation:
        conversation = cls(messages)
        users = [i for i, m in enumerate(messages) if m.role == "user"]
        conversation.last_user = users[-1] if users else -1
        by_id: dict[str, _Call] = {}
        for i, message in enumerate(messages):
            for call in message.tool_calls:
                entry = _Call(call, i > conversation.last_user, i)
                conversation.calls.append(entry)
                by_id[call.id] = entry
            if message.role == "tool" and message.tool_call_id in by_id:
                entry = by_id[message.tool_call_id]
                entry.result, entry.answered, entry.answered_at = _json(message.text), True, i
        return conversation

    @property
    def user_text(self) -> str:
        if self.last_user < 0:
            return ""
        return " ".join(self.messages[self.last_user].text.split())

    @property
    def user_line(self) -> str:
        """The first line of the person's last message."""
        if self.last_user < 0:
            return ""
        return self.messages[self.last_user].text.strip().split("\n", 1)[0]

    def recent(self) -> list[_Call]:
        """The calls made since the person's last message."""
        return [c for c in self.calls if c.after_last_user]

    def done(self, name: str) -> bool:
        latest = next((c for c in reversed(self.recent()) if c.call.name == name), None)
        return latest is not None and _error_code(latest.result) != "changes_requested"

    def single_ids(self) -> list[str]:
        """Ids for one document field, best first: the latest result that names any
        (in its own order), then the ids earlier calls were given, then the person's."""
        ordered: list[str] = []
        for entry in sorted(
            (c for c in self.calls if c.answered), key=lambda c: c.answered_at, reverse=True
        ):
            ordered += _IDS.findall(json.dumps(entry.result))
        for entry in reversed(self.calls):
            ordered += _IDS.findall(entry.call.arguments)
        for message in self.messages:
            if message.role == "user":
                ordered += _IDS.findall(message.text)
        return list(dict.fromkeys(ordered))

    def all_ids(self) -> list[str]:
        """Every id seen, in the order first seen (the person's messages, then calls)."""
        ordered: list[str] = []
        for message in self.messages:
            if message.role in ("user", "tool"):
                ordered += _IDS.findall(message.text)
            for call in message.tool_calls:
                ordered += _IDS.findall(call.arguments)
        return list(dict.fromkeys(ordered))

    def latest_person_words(self) -> str:
        """The person's latest words: an answer to a question, a change request, or
        their last message, whichever came last."""
        latest, at = self.user_text, self.last_user
        for entry in self.calls:
            if not entry.answered or entry.answered_at < at:
                continue
            result = entry.result
            if isinstance(result, dict) and isinstance(result.get("answer"), str):
                latest, at = result["answer"], entry.answered_at
            elif _error_code(result) == "changes_requested":
                latest, at = str(result["error"].get("message", "")), entry.answered_at
        return latest

    def label_of(self, document_id: str) -> str | None:
        """The first label or tag a tool gave `document_id`, if one did."""
        for entry in self.calls:
            if document_id not in entry.call.arguments or not isinstance(entry.result, dict):
                continue
            labels = entry.result.get("labels") or entry.result.get("tags") or []
            if labels and isinstance(labels[0], dict) and "label" in labels[0]:
                return str(labels[0]["label"])
            if labels and isinstance(labels[0], str):
                return labels[0]
        return None


@dataclass(frozen=True, slots=True)
class Decision:
    """What the simulator answers: text, and the tool calls it makes (maybe none)."""

    text: str
    calls: list[ToolCall]


def decide(request: CompletionRequest) -> Decision | None:
    """The simulator's answer to a request that offers tools, or None when it offers none
    (or `tool_choice` is `none`) and the conversation holds no tool results to read."""
    conversation = Conversation.of(request.messages)
    choice = request.tool_choice
    if request.tools and choice != "none":
        call = _next_call(request.tools, choice, conversation)
        if call is not None:
            return Decision(f"{LABEL} Calling {call.name}.", [call])
    if any(c.answered for c in conversation.recent()):
        return Decision(answer_from_results(conversation), [])
    return None


def _next_call(
    tools: list[ToolDefinition], choice: str | dict[str, Any] | None, conversation: Conversation
) -> ToolCall | None:
    named = _named_choice(choice)
    candidates = [t for t in tools if named is None or t.name == named]
    must = named is not None or choice == "required"
    for repeat in (False, True) if must else (False,):
        for tool in candidates:
            if not repeat and conversation.done(tool.name):
                continue
            arguments = build_arguments(tool.parameters, conversation)
            if arguments is not None:
                call_id = f"call_sim_{len(conversation.messages)}_{len(conversation.calls)}"
                return ToolCall(call_id, tool.name, json.dumps(arguments))
    return None


def _named_choice(choice: str | dict[str, Any] | None) -> str | None:
    if isinstance(choice, dict):
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


# --- arguments --------------------------------------------------------------------------


def build_arguments(schema: dict[str, Any], conversation: Conversation) -> dict[str, Any] | None:
    """An instance of `schema` (a tool's parameters) made from `conversation`, or None
    when a field it needs (a document id, an image) cannot be had from it."""
    value = _Builder(schema, conversation).value(schema, "", None, 0)
    return value if isinstance(value, dict) else None


class _Builder:
    def __init__(self, schema: dict[str, Any], conversation: Conversation) -> None:
        self.defs: dict[str, Any] = schema.get("$defs", {})
        self.conversation = conversation

    def value(self, node: dict[str, Any], name: str, document_id: str | None, depth: int) -> Any:
        if depth > 20:
            return _MISSING
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return self.value(
                self.defs.get(ref.removeprefix("#/$defs/"), {}), name, None, depth + 1
            )
        if "const" in node:
            return node["const"]
        if node.get("enum"):
            return node["enum"][0]
        for key in ("anyOf", "oneOf"):
            options = [o for o in node.get(key, []) if o.get("type") != "null"]
            if options:
                return self.value(options[0], name, document_id, depth + 1)
        for part in node.get("allOf", []):
            return self.value(part, name, document_id, depth + 1)
        kind = node.get("type", "object" if "properties" in node else "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            return self.object(node, document_id, depth)
        if kind == "array":
            return self.array(node, name, depth)
        if kind in ("integer", "number"):
            return self.number(node, kind)
        if kind == "boolean":
            return bool(node.get("default", False))
        if kind == "null":
            return None
        return self.string(node, name, document_id)

    def object(self, node: dict[str, Any], document_id: str | None, depth: int) -> Any:
        properties: dict[str, Any] = node.get("properties", {})
        required = [n for n in node.get("required", []) if n in properties]
        built: dict[str, Any] = {}
        for name in required:
            value = self.value(properties[name], name, document_id, depth + 1)
            if value is _MISSING:
                return _MISSING
            built[name] = value
        sources = [n for n in properties if n not in required and _is_source(n, properties[n])]
        if sources and not any(_is_source(n, properties[n]) for n in required):
            # "A text or a document": exactly one, a document when the conversation has one.
            ranked = sorted(sources, key=lambda n: 0 if _is_id(n, properties[n]) else 1)
            for name in ranked:
                value = self.value(properties[name], name, document_id, depth + 1)
                if value is not _MISSING:
                    built[name] = value
                    break
            else:
                return _MISSING
        return built

    def array(self, node: dict[str, Any], name: str, depth: int) -> Any:
        items: dict[str, Any] = self._resolved(node.get("items", {}))
        least = max(int(node.get("minItems", 0)), 1)
        most = int(node.get("maxItems", 3))
        if _is_id(name.removesuffix("s"), items) or _holds_ids(items):
            ids = [i for i in self.conversation.all_ids() if _fits(items, i)][:most]
            if _holds_ids(items):
                values = [self.value(items, "", i, depth + 1) for i in ids]
                values = [v for v in values if v is not _MISSING]
            else:
                values = list(ids)
            return values if len(values) >= least else _MISSING
        values = [self.value(items, name, None, depth + 1) for _ in range(min(least, most))]
        return _MISSING if any(v is _MISSING for v in values) else values

    def number(self, node: dict[str, Any], kind: str) -> Any:
        value = node.get("default")
        if not isinstance(value, int | float) or isinstance(value, bool):
            value = node.get("minimum", node.get("exclusiveMinimum", 0) + 1)
        if "maximum" in node:
            value = min(value, node["maximum"])
        return int(value) if kind == "integer" else value

    def string(self, node: dict[str, Any], name: str, document_id: str | None) -> Any:
        if _is_id(name, node):
            if document_id is not None:
                return document_id if _fits(node, document_id) else _MISSING
            ids = [i for i in self.conversation.single_ids() if _fits(node, i)]
            return ids[0] if ids else _MISSING
        if name == "image_url" or node.get("format") in ("uri", "binary"):
            return _MISSING  # the simulator cannot make up an image or a URL
        words = self.conversation.user_text or "simulated"
        if name == "folder":
            text = self.folder(document_id)
        elif name == "question":
            text = f"{LABEL} Before I go on: how should I handle this? You asked: {_clip(words)}"
        elif name in ("title", "heading", "tone", "audience"):
            text = _clip(words, 80)
        else:
            text = words
        limit = int(node.get("maxLength", 10_000))
        text = text[:limit]
        if len(text) < int(node.get("minLength", 0)):
            text = text.ljust(int(node["minLength"]), ".")
        pattern = node.get("pattern")
        if isinstance(pattern, str) and re.search(pattern, text) is None:
            return _MISSING
        return text

    def folder(self, document_id: str | None) -> str:
        """`<criterion>/<label>`: the first keyword of the person's latest words, and the
        label a tool gave the document (`unsorted` without one)."""
        criterion = _slug(next(iter(keywords(self.conversation.latest_person_words())), ""))
        label = self.conversation.label_of(document_id) if document_id else None
        return f"{criterion or 'sorted'}/{_slug(label or '') or 'unsorted'}"

    def _resolved(self, node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            resolved: dict[str, Any] = self.defs.get(ref.removeprefix("#/$defs/"), {})
            return resolved
        return node


def _is_source(name: str, node: dict[str, Any]) -> bool:
    return name in _SOURCES or _is_id(name, node)


def _is_id(name: str, node: dict[str, Any]) -> bool:
    pattern = _pattern(node)
    return name == "document_id" or (pattern is not None and "doc_" in pattern)


def _pattern(node: dict[str, Any]) -> str | None:
    if isinstance(node.get("pattern"), str):
        return str(node["pattern"])
    for option in node.get("anyOf", []):
        if isinstance(option, dict) and isinstance(option.get("pattern"), str):
            return str(option["pattern"])
    return None


def _holds_ids(items: dict[str, Any]) -> bool:
    """An array item that is an object with a document id field (a move, a section)."""
    properties = items.get("properties", {})
    return any(_is_id(n, p) for n, p in properties.items() if n in items.get("required", []))


def _fits(node: dict[str, Any], value: str) -> bool:
    pattern = _pattern(node)
    return pattern is None or re.search(pattern, value) is not None


def keywords(text: str) -> list[str]:
    """The words of `text` that carry meaning, lower-cased, in order, without repeats."""
    found = [w.lower() for w in _WORDS.findall(text)]
    return list(dict.fromkeys(w for w in found if w not in _STOPWORDS))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")


# --- answers ----------------------------------------------------------------------------


def answer_from_results(conversation: Conversation) -> str:
    """The simulator's answer once its tools have answered: what each result said, citing
    the documents they name as `[doc_...]`."""
    described = [_describe(c.call.name, c.result) for c in conversation.recent() if c.answered]
    counts = {part: described.count(part) for part in described}
    parts = [part if n == 1 else f"{part} (x{n})" for part, n in counts.items()]
    said = _clip(conversation.user_line, 80)
    return f'{LABEL} You said "{said}". From the tools: ' + "; ".join(parts) + "."


def _describe(name: str, result: Any) -> str:
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        return f"{name} did not run: {_clip(str(result['error'].get('message', '')))}"
    refs = _references(result)
    if refs:
        shown = ", ".join(refs[:3])
        more = f" and {len(refs) - 3} more" if len(refs) > 3 else ""
        return f"{name} gave {shown}{more}"
    if isinstance(result, dict) and result:
        fields = [f"{k} {_short(v)}" for k, v in list(result.items())[:3]]
        return f"{name} gave {', '.join(fields)}"
    return f"{name} gave {_short(result)}"


def _references(value: Any) -> list[str]:
    """Each document a result names: `filename [doc_...]`, with where it moved and the
    first words it quotes."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            ident = node.get("document_id") or node.get("id")
            if isinstance(ident, str) and _IDS.fullmatch(ident) and ident not in found:
                text = f"[{ident}]"
                if isinstance(node.get("filename"), str):
                    text = f"{node['filename']} {text}"
                if isinstance(node.get("to_folder"), str):
                    text += f" moved to {node['to_folder']}/"
                quote = node.get("snippet") or node.get("text")
                if isinstance(quote, str) and quote.strip():
                    text += f': "{_clip(quote, 80)}"'
                found[ident] = text
            for item in node.values():
                walk(item)

    walk(value)
    return list(found.values())


def _short(value: Any) -> str:
    if isinstance(value, list):
        return f"({len(value)} items)"
    if isinstance(value, dict):
        return f"({len(value)} fields)"
    if isinstance(value, str):
        return f'"{_clip(value, 60)}"'
    return json.dumps(value)


def _clip(text: str, limit: int = _ECHO) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _error_code(result: Any) -> str | None:
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        code = result["error"].get("code")
        return str(code) if code is not None else None
    return None

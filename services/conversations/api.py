"""The Conversations API, shared by both front doors: validation in plain Python (the
gateway Lambda loads no pydantic) and the JSON the routes answer with.

    POST   /v1/conversations               {"title"?, "model"?, "system_prompt"?, "metadata"?}
    GET    /v1/conversations?limit=&after=  newest first; `after` is a previous next_cursor
    GET    /v1/conversations/{id}?limit=&after=   the conversation and a page of its messages
    PATCH  /v1/conversations/{id}          {"title": str | null}
    DELETE /v1/conversations/{id}

Everything is scoped to the caller's tenant: another tenant's conversation is a 404, exactly
like one that does not exist. The objects follow OpenAI's conversation objects (`id`,
`object`, `created_at`, `metadata`), so `client.conversations.retrieve/delete` of the
openai SDK work unchanged.

To chat in a conversation, send `POST /v1/chat/completions` with
`"metadata": {"conversation_id": "conv_..."}` and only the new user message
(see `services.chat.conversation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.canonical import TextPart
from services.conversations.store import (
    Conversation,
    ConversationStore,
    StoredMessage,
    check_conversation_id,
)
from services.errors import InvalidRequest
from services.tenancy.auth import Principal
from services.web.body import known_fields
from services.web.params import page_limit

MAX_TITLE_CHARS = 256
MAX_MODEL_CHARS = 256
MAX_SYSTEM_PROMPT_CHARS = 32_000
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "object": "conversation",
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at_ms // 1000,
        "title": conversation.title,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "metadata": conversation.metadata,
        "message_count": conversation.message_count,
    }


def message_json(stored: StoredMessage) -> dict[str, Any]:
    message = stored.message
    content: str | list[dict[str, Any]] | None
    if all(isinstance(p, TextPart) for p in message.content):
        content = message.text if message.content or not message.tool_calls else None
    else:
        content = [
            {"type": "text", "text": p.text}
            if isinstance(p, TextPart)
            else {"type": "image_url", "image_url": {"url": p.url, "detail": p.detail}}
            for p in message.content
        ]
    data: dict[str, Any] = {
        "id": stored.id,
        "object": "conversation.message",
        "created_at": stored.created_at,
        "role": message.role,
        "content": content,
    }
    if message.tool_calls:
        data["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        data["name"] = message.name
    return data


class ConversationsAPI:
    """The five routes, as functions of (principal, path id, query, decoded body)."""

    def __init__(self, store: ConversationStore) -> None:
        self.store = store

    def create(self, principal: Principal, body: Any) -> dict[str, Any]:
        fields = known_fields(body, {"title", "model", "system_prompt", "metadata"})
        conversation = self.store.create(
            principal.tenant_id,
            title=_text(fields, "title", MAX_TITLE_CHARS),
            model=_text(fields, "model", MAX_MODEL_CHARS, empty=False),
            system_prompt=_text(fields, "system_prompt", MAX_SYSTEM_PROMPT_CHARS),
            metadata=_metadata(fields.get("metadata")),
        )
        return conversation_json(conversation)

    def list(self, principal: Principal, query: Mapping[str, str]) -> dict[str, Any]:
        limit, after = _paging(query)
        page = self.store.list_conversations(principal.tenant_id, limit=limit, after=after)
        return {
            "object": "list",
            "data": [conversation_json(c) for c in page.items],
            "has_more": page.has_more,
            "next_cursor": page.next_cursor,
        }

    def get(self, principal: Principal, cid: str, query: Mapping[str, str]) -> dict[str, Any]:
        check_conversation_id(cid)
        limit, after = _paging(query)
        conversation = self.store.get(principal.tenant_id, cid)
        page = self.store.messages(principal.tenant_id, cid, limit=limit, after=after)
        return {
            **conversation_json(conversation),
            "messages": {
                "object": "list",
                "data": [message_json(m) for m in page.items],
                "has_more": page.has_more,
                "next_cursor": page.next_cursor,
            },
        }

    def rename(self, principal: Principal, cid: str, body: Any) -> dict[str, Any]:
        check_conversation_id(cid)
        fields = known_fields(body, {"title"})
        if "title" not in fields:
            raise InvalidRequest(
                "Missing required parameter: 'title'.",
                param="title",
                code="missing_required_parameter",
            )
        title = _text(fields, "title", MAX_TITLE_CHARS)
        return conversation_json(self.store.rename(principal.tenant_id, cid, title))

    def delete(self, principal: Principal, cid: str) -> dict[str, Any]:
        check_conversation_id(cid)
        self.store.delete(principal.tenant_id, cid)
        return {"id": cid, "object": "conversation.deleted", "deleted": True}


def _text(fields: dict[str, Any], name: str, limit: int, *, empty: bool = True) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(name, "a string or null")
    if not empty and not value:
        raise _invalid(name, "a non-empty string")
    if len(value) > limit:
        raise InvalidRequest(
            f"Invalid value for '{name}': at most {limit} characters (got {len(value)}).",
            param=name,
            code="string_above_max_length",
        )
    return value


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid("metadata", "an object of string values")
    if len(value) > MAX_METADATA_PAIRS:
        raise _invalid("metadata", f"an object with at most {MAX_METADATA_PAIRS} keys")
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise _invalid("metadata", f"keys of at most {MAX_METADATA_KEY_CHARS} characters")
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE_CHARS:
            raise _invalid(
                f"metadata.{key}", f"a string of at most {MAX_METADATA_VALUE_CHARS} characters"
            )
    return dict(value)


def _paging(query: Mapping[str, str]) -> tuple[int, str | None]:
    for name in query:
        if name not in ("limit", "after"):
            raise InvalidRequest(
                f"Unrecognized query parameter: {name}", param=name, code="unknown_parameter"
            )
    after = query.get("after") or None
    return page_limit(query.get("limit")), after


def _invalid(name: str, expected: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid value for '{name}': expected {expected}.", param=name, code="invalid_value"
    )

"""Conversations: multi-turn chat state in the single table, one Query and one
TransactWriteItems per turn.

Keys: the conversation and message items of the key layout in services/dynamo.py. Every
key of a conversation begins with its tenant, so a tenant can only ever address its own
items: isolation is structural, not a filter.

- META holds title, model, system_prompt, metadata (JSON text), created_at (s),
  updated_at (ms), `version` (bumped by every turn), `message_count` (the next message's
  seq) and `expires_at`.
- A message holds role, content (JSON text of the canonical message: parts, tool calls,
  tool_call_id, name), created_at and `expires_at`; or, when that JSON is over
  `OFFLOAD_BYTES`, `s3_key` naming an S3 object that holds it
  (`tenants/<tid>/conversations/<cid>/<seq>-<random>.json`, written before the turn's
  transaction; the random suffix keeps a turn that loses the race from overwriting the
  object of the turn that won it).
- "META" sorts before "MSG#", so one Query on the conversation's partition returns the
  metadata and then the messages in order: that is how a turn loads its history. A
  partition over 1 MB comes back in several pages, so a very long conversation costs
  one read request per MB.
- The index `gsi1` lists a tenant's conversations, most recently updated first.

A turn is stored with one TransactWriteItems: an Update of META conditioned on
`version = <the version the history was read at>` (bumping version, message_count,
updated_at, gsi1sk and expires_at) and one Put per new message (conditioned on
`attribute_not_exists`). Two turns racing on one conversation both read version n; the
first to commit wins, the second's condition fails and nothing of it is stored: it is
answered 409 `conversation_conflict`, and the client sends the turn again on the new
history (the openai SDK retries a 409 by itself). Retrying inside the server would mean
calling the model a second time on a history the client has not seen; the client is the
better judge of that.

Retention: `expires_at` (epoch seconds, the table's TTL attribute) is set to now plus the
retention period on META at every turn and on each message when it is written. DynamoDB
deletes expired items late (and moto never does), so every read here ignores items whose
`expires_at` has passed. A message therefore expires `retention_days` after it was written
and a conversation `retention_days` after its last turn.

The store is synchronous (boto3); async callers run it in a thread.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from botocore.exceptions import ClientError

from services.config import env_int, env_optional
from services.dynamo import (
    GSI1,
    Listing,
    attributes,
    cancellation_reasons,
    conditional_failed,
    error_code,
    invalid_cursor,
    plain,
)
from services.errors import APIError, InvalidRequest, NotFound
from services.providers.base import ContentPart, ImagePart, Message, Role, TextPart, ToolCall

# Offloaded message objects carry this tag; infra/stacks/stateful.py's lifecycle rule
# deletes them a day after their DynamoDB item's TTL.
OFFLOADED_MESSAGE_TAG = ("switchboard-retention", "conversation")
OFFLOADED_MESSAGE_TAGGING = "=".join(OFFLOADED_MESSAGE_TAG)

# Response headers of a conversation turn; the front doors pass them on.
CONVERSATION_HEADER = "x-switchboard-conversation-id"
TRIMMED_HEADER = "x-switchboard-trimmed-messages"
OFFLOAD_BYTES = 350_000
DEFAULT_RETENTION_DAYS = 30
DEFAULT_MAX_TURN_CHARS = 100_000
MAX_PAGE = 100
_BATCH = 25
_SEQ_DIGITS = 10
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
CONVERSATION_ID = re.compile(r"^conv_[0-9a-hjkmnp-tv-z]{26}$")
_LIST_SORT_KEY = re.compile(r"[0-9]{15}#conv_[0-9a-hjkmnp-tv-z]{26}")
MESSAGE_ID = re.compile(r"^msg_[0-9]{10}$")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    """What every entry point that touches conversations reads from the environment."""

    bucket: str | None = None
    retention_days: int = DEFAULT_RETENTION_DAYS
    max_turn_chars: int = DEFAULT_MAX_TURN_CHARS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConversationSettings:
        return cls(
            bucket=env_optional(env, "SWITCHBOARD_BUCKET"),
            retention_days=env_int(
                env, "SWITCHBOARD_CONVERSATION_RETENTION_DAYS", DEFAULT_RETENTION_DAYS, minimum=1
            ),
            max_turn_chars=env_int(
                env, "SWITCHBOARD_MAX_TURN_CHARS", DEFAULT_MAX_TURN_CHARS, minimum=1
            ),
        )

    def store(self, table: str, *, dynamodb: Any = None, s3: Any = None) -> ConversationStore:
        """A store on `table`, with default boto3 clients for those not passed."""
        if dynamodb is None or (s3 is None and self.bucket):
            import boto3

            dynamodb = dynamodb or boto3.client("dynamodb")
            s3 = s3 or (boto3.client("s3") if self.bucket else None)
        return ConversationStore(
            dynamodb, table, s3=s3, bucket=self.bucket, retention_days=self.retention_days
        )


class ConversationConflict(APIError):
    status = 409
    type = "invalid_request_error"
    code = "conversation_conflict"

    def __init__(self) -> None:
        super().__init__(
            "Another turn was stored in this conversation while this one was running; "
            "nothing of this turn was stored. Send it again to continue from the new history.",
            headers={"x-should-retry": "true"},
        )


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    tenant_id: str
    title: str | None
    model: str | None
    system_prompt: str | None
    metadata: dict[str, str]
    created_at: int
    updated_at_ms: int
    version: int
    message_count: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    seq: int
    message: Message
    created_at: int

    @property
    def id(self) -> str:
        return message_id(self.seq)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """A conversation as one turn reads it: its metadata and every live message."""

    conversation: Conversation
    messages: list[StoredMessage] = field(default_factory=list)


def new_conversation_id(now: float | None = None) -> str:
    """`conv_` and 26 Crockford base32 characters: 48 bits of milliseconds, 80 random bits."""
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (ms << 80) | secrets.randbits(80)
    chars = [_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1)]
    return "conv_" + "".join(chars)


def check_conversation_id(value: object, param: str = "conversation_id") -> str:
    if not isinstance(value, str) or not CONVERSATION_ID.match(value):
        raise InvalidRequest(
            f"Invalid conversation id {value!r}: expected 'conv_' followed by 26 characters.",
            param=param,
            code="invalid_conversation_id",
        )
    return value


def message_id(seq: int) -> str:
    return f"msg_{seq:0{_SEQ_DIGITS}d}"


def message_to_json(message: Message) -> dict[str, Any]:
    """The canonical message as JSON-ready data (what a message item stores)."""
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        else:
            parts.append({"type": "image", "url": part.url, "detail": part.detail})
    data: dict[str, Any] = {"role": message.role, "content": parts}
    if message.tool_calls:
        data["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        data["name"] = message.name
    return data


def message_from_json(data: dict[str, Any]) -> Message:
    parts: list[ContentPart] = []
    for part in data.get("content", []):
        if part["type"] == "text":
            parts.append(TextPart(part["text"]))
        else:
            parts.append(ImagePart(part["url"], part.get("detail")))
    role: Role = data["role"]
    return Message(
        role=role,
        content=parts,
        tool_calls=[
            ToolCall(c["id"], c["name"], c["arguments"]) for c in data.get("tool_calls", [])
        ],
        tool_call_id=data.get("tool_call_id"),
        name=data.get("name"),
    )


def _not_found(cid: str) -> NotFound:
    return NotFound(
        f"No conversation found with id '{cid}'.",
        param="conversation_id",
        code="conversation_not_found",
    )


class ConversationStore:
    """Conversations and their messages in the table (and large messages in S3).

    Takes a boto3 DynamoDB client and, for messages over `OFFLOAD_BYTES`, an S3 client and
    bucket. Without a bucket such a message is refused with 413.
    """

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        *,
        s3: Any = None,
        bucket: str | None = None,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        clock: Callable[[], float] = time.time,
        offload_bytes: int = OFFLOAD_BYTES,
    ) -> None:
        self._ddb = dynamodb
        self._table = table
        self._s3 = s3
        self._bucket = bucket
        self._retention_seconds = retention_days * 86_400
        self._clock = clock
        self._offload_bytes = offload_bytes

    # -- keys -----------------------------------------------------------------------------

    @staticmethod
    def _pk(tenant: str, cid: str) -> str:
        return f"TENANT#{tenant}#CONV#{cid}"

    @staticmethod
    def _list_pk(tenant: str) -> str:
        return f"TENANT#{tenant}#CONVS"

    @staticmethod
    def _gsi1sk(updated_ms: int, cid: str) -> str:
        return f"{updated_ms:015d}#{cid}"

    def listing(self, tenant: str) -> Listing:
        """The tenant's conversations on `gsi1`, most recently updated first."""
        return Listing(
            self._list_pk(tenant),
            _LIST_SORT_KEY,
            lambda sort_key: (self._pk(tenant, sort_key.partition("#")[2]), "META"),
        )

    def _s3_prefix(self, tenant: str, cid: str) -> str:
        return f"tenants/{tenant}/conversations/{cid}/"

    # -- conversations --------------------------------------------------------------------

    def create(
        self,
        tenant: str,
        *,
        title: str | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Conversation:
        now = self._clock()
        cid = new_conversation_id(now)
        conversation = Conversation(
            id=cid,
            tenant_id=tenant,
            title=title,
            model=model,
            system_prompt=system_prompt,
            metadata=dict(metadata or {}),
            created_at=int(now),
            updated_at_ms=int(now * 1000),
            version=0,
            message_count=0,
            expires_at=int(now) + self._retention_seconds,
        )
        item = attributes(
            {
                "pk": self._pk(tenant, cid),
                "sk": "META",
                "gsi1pk": self._list_pk(tenant),
                "gsi1sk": self._gsi1sk(conversation.updated_at_ms, cid),
                "id": cid,
                "title": conversation.title,
                "model": conversation.model,
                "system_prompt": conversation.system_prompt,
                "metadata": json.dumps(conversation.metadata),
                "created_at": conversation.created_at,
                "updated_at": conversation.updated_at_ms,
                "version": 0,
                "message_count": 0,
                "expires_at": conversation.expires_at,
            }
        )
        self._ddb.put_item(
            TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )
        return conversation

    def get(self, tenant: str, cid: str) -> Conversation:
        """The conversation's metadata, or 404 if it does not exist, is another tenant's
        or has expired."""
        check_conversation_id(cid)
        response = self._ddb.get_item(
            TableName=self._table,
            Key=attributes({"pk": self._pk(tenant, cid), "sk": "META"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None or not self._live(item):
            raise _not_found(cid)
        return self._conversation(tenant, item)

    def list_conversations(
        self, tenant: str, *, limit: int = 20, after: str | None = None
    ) -> Page[Conversation]:
        """The tenant's live conversations, most recently updated first."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI1,
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": attributes({":pk": self._list_pk(tenant)}),
            "ScanIndexForward": False,
        }
        if after is not None:
            params["ExclusiveStartKey"] = self.listing(tenant).start_key(after)
        items, has_more = self._page(params, limit)
        conversations = [self._conversation(tenant, item) for item in items]
        cursor = None
        if has_more and items:
            last = items[-1]
            cursor = self.listing(tenant).cursor(last["gsi1sk"]["S"])
        return Page(conversations, has_more, cursor)

    def rename(self, tenant: str, cid: str, title: str | None) -> Conversation:
        check_conversation_id(cid)
        now = self._clock()
        updated_ms = int(now * 1000)
        values: dict[str, Any] = {
            ":now": int(now),
            ":updated": updated_ms,
            ":gsi1sk": self._gsi1sk(updated_ms, cid),
        }
        if title is None:
            update = "REMOVE title SET updated_at = :updated, gsi1sk = :gsi1sk"
        else:
            update = "SET title = :title, updated_at = :updated, gsi1sk = :gsi1sk"
            values[":title"] = title
        try:
            response = self._ddb.update_item(
                TableName=self._table,
                Key=attributes({"pk": self._pk(tenant, cid), "sk": "META"}),
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk) AND expires_at > :now",
                ExpressionAttributeValues=attributes(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not conditional_failed(exc):
                raise
            raise _not_found(cid) from None
        return self._conversation(tenant, response["Attributes"])

    def delete(self, tenant: str, cid: str) -> None:
        """Remove the conversation, every message and every S3 object it owns."""
        check_conversation_id(cid)
        pk = self._pk(tenant, cid)
        for _ in range(5):
            keys = list(self._partition(pk, projection=True))
            meta = next((item for item in keys if item["sk"] == {"S": "META"}), None)
            if meta is None or not self._live(meta):
                raise _not_found(cid)
            try:
                # Conditioned on the version read, so a turn stored in between (whose
                # messages the Query above did not see) makes us look again.
                self._ddb.delete_item(
                    TableName=self._table,
                    Key=attributes({"pk": pk, "sk": "META"}),
                    ConditionExpression="version = :v",
                    ExpressionAttributeValues={":v": meta["version"]},
                )
            except ClientError as exc:
                if not conditional_failed(exc):
                    raise
                continue
            break
        else:
            raise ConversationConflict()
        messages = [item for item in keys if item["sk"] != {"S": "META"}]
        for start in range(0, len(messages), _BATCH):
            self._batch_delete(messages[start : start + _BATCH])
        self._delete_objects(self._s3_prefix(tenant, cid))

    # -- messages -------------------------------------------------------------------------

    def messages(
        self, tenant: str, cid: str, *, limit: int = 20, after: str | None = None
    ) -> Page[StoredMessage]:
        """A page of the conversation's live messages, oldest first. `after` is a message id."""
        check_conversation_id(cid)
        first = 0
        if after is not None:
            if not MESSAGE_ID.match(after):
                raise invalid_cursor()
            first = int(after[len("msg_") :]) + 1
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": attributes(
                {
                    ":pk": self._pk(tenant, cid),
                    ":lo": f"MSG#{first:0{_SEQ_DIGITS}d}",
                    ":hi": "MSG#" + "9" * _SEQ_DIGITS,
                }
            ),
            "ConsistentRead": True,
        }
        items, has_more = self._page(params, limit)
        stored = [self._message(tenant, cid, item) for item in items]
        cursor = stored[-1].id if has_more and stored else None
        return Page(stored, has_more, cursor)

    def history(self, tenant: str, cid: str) -> History:
        """META and every live message, with one Query (one page per MB of conversation)."""
        check_conversation_id(cid)
        conversation: Conversation | None = None
        messages: list[StoredMessage] = []
        for item in self._partition(self._pk(tenant, cid)):
            if item["sk"]["S"] == "META":
                if not self._live(item):
                    raise _not_found(cid)
                conversation = self._conversation(tenant, item)
            elif self._live(item):
                messages.append(self._message(tenant, cid, item))
        if conversation is None:
            raise _not_found(cid)
        return History(conversation, messages)

    def append_turn(
        self, conversation: Conversation, new: list[Message], reply: Message
    ) -> Conversation:
        """Store the turn's new messages and the reply with one TransactWriteItems.

        Raises `ConversationConflict` (409) if another turn was stored since `conversation`
        was read, and 404 if the conversation was deleted meanwhile; either way nothing of
        this turn is stored.
        """
        tenant, cid = conversation.tenant_id, conversation.id
        pk = self._pk(tenant, cid)
        now = self._clock()
        updated_ms = max(int(now * 1000), conversation.updated_at_ms + 1)
        expires_at = int(now) + self._retention_seconds
        messages = [*new, reply]
        puts: list[dict[str, Any]] = []
        written: list[str] = []
        try:
            for offset, message in enumerate(messages):
                seq = conversation.message_count + offset
                content = json.dumps(message_to_json(message), separators=(",", ":"))
                s3_key = None
                if len(content.encode()) > self._offload_bytes:
                    s3_key = self._offload(tenant, cid, seq, content)
                    written.append(s3_key)
                item = attributes(
                    {
                        "pk": pk,
                        "sk": f"MSG#{seq:0{_SEQ_DIGITS}d}",
                        "role": message.role,
                        "created_at": int(now),
                        "expires_at": expires_at,
                        "s3_key": s3_key,
                        "content": None if s3_key else content,
                    }
                )
                puts.append(
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                )
            update = {
                "Update": {
                    "TableName": self._table,
                    "Key": attributes({"pk": pk, "sk": "META"}),
                    "UpdateExpression": (
                        "SET version = :next, message_count = message_count + :added, "
                        "updated_at = :updated, gsi1sk = :gsi1sk, expires_at = :expires"
                    ),
                    "ConditionExpression": "version = :expected",
                    "ExpressionAttributeValues": attributes(
                        {
                            ":expected": conversation.version,
                            ":next": conversation.version + 1,
                            ":added": len(messages),
                            ":updated": updated_ms,
                            ":gsi1sk": self._gsi1sk(updated_ms, cid),
                            ":expires": expires_at,
                        }
                    ),
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            self._ddb.transact_write_items(TransactItems=[update, *puts])
        except ClientError as exc:
            self._discard(written)
            if error_code(exc) != "TransactionCanceledException":
                raise
            meta = next(iter(cancellation_reasons(exc)), {})
            if meta.get("Code") == "ConditionalCheckFailed" and not meta.get("Item"):
                raise _not_found(cid) from None
            raise ConversationConflict() from None
        except BaseException:
            self._discard(written)
            raise
        return Conversation(
            id=cid,
            tenant_id=tenant,
            title=conversation.title,
            model=conversation.model,
            system_prompt=conversation.system_prompt,
            metadata=conversation.metadata,
            created_at=conversation.created_at,
            updated_at_ms=updated_ms,
            version=conversation.version + 1,
            message_count=conversation.message_count + len(messages),
            expires_at=expires_at,
        )

    # -- helpers --------------------------------------------------------------------------

    def _live(self, item: dict[str, Any]) -> bool:
        expires = item.get("expires_at")
        return expires is None or int(expires["N"]) > self._clock()

    def _partition(self, pk: str, *, projection: bool = False) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": attributes({":pk": pk}),
            "ConsistentRead": True,
        }
        if projection:
            params["ProjectionExpression"] = "pk, sk, version, expires_at"
        while True:
            response = self._ddb.query(**params)
            yield from response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    def _page(self, params: dict[str, Any], limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` live items, and whether more live items follow them."""
        found: list[dict[str, Any]] = []
        while True:
            response = self._ddb.query(**params, Limit=limit + 1 - len(found))
            found.extend(item for item in response.get("Items", []) if self._live(item))
            last = response.get("LastEvaluatedKey")
            if len(found) > limit:
                return found[:limit], True
            if not last:
                return found, False
            params = {**params, "ExclusiveStartKey": last}

    def _conversation(self, tenant: str, item: dict[str, Any]) -> Conversation:
        v = plain(item)
        return Conversation(
            id=v["id"],
            tenant_id=tenant,
            title=v.get("title"),
            model=v.get("model"),
            system_prompt=v.get("system_prompt"),
            metadata=json.loads(v["metadata"]) if "metadata" in v else {},
            created_at=int(v["created_at"]),
            updated_at_ms=int(v["updated_at"]),
            version=int(v["version"]),
            message_count=int(v["message_count"]),
            expires_at=int(v["expires_at"]),
        )

    def _message(self, tenant: str, cid: str, item: dict[str, Any]) -> StoredMessage:
        v = plain(item)
        if "s3_key" in v:
            key = v["s3_key"]
            if (
                self._s3 is None
                or self._bucket is None
                or not key.startswith(self._s3_prefix(tenant, cid))
            ):
                raise APIError("A stored message cannot be read: no bucket is configured.")
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            content = body.decode()
        else:
            content = v["content"]
        return StoredMessage(
            seq=int(v["sk"][len("MSG#") :]),
            message=message_from_json(json.loads(content)),
            created_at=int(v["created_at"]),
        )

    def _offload(self, tenant: str, cid: str, seq: int, content: str) -> str:
        if self._s3 is None or self._bucket is None:
            raise APIError(
                "This message is too large to store in a conversation here "
                "(no bucket is configured for large messages).",
                status=413,
                type="invalid_request_error",
                code="message_too_large",
            )
        key = f"{self._s3_prefix(tenant, cid)}{seq:0{_SEQ_DIGITS}d}-{secrets.token_hex(6)}.json"
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=content.encode(),
            ContentType="application/json",
            # The bucket's lifecycle expires tagged messages with their conversation.
            Tagging=OFFLOADED_MESSAGE_TAGGING,
        )
        return key

    def _discard(self, keys: list[str]) -> None:
        """Best effort: the objects of a turn that was not stored."""
        if not keys or self._s3 is None:
            return
        # An orphaned object is harmless; the turn's own error is what the caller must see.
        with contextlib.suppress(Exception):
            self._s3.delete_objects(
                Bucket=self._bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )

    def _delete_objects(self, prefix: str) -> None:
        if self._s3 is None or self._bucket is None:
            return
        params: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix}
        while True:
            response = self._s3.list_objects_v2(**params)
            objects = [{"Key": o["Key"]} for o in response.get("Contents", [])]
            if objects:
                self._s3.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": objects, "Quiet": True}
                )
            if not response.get("IsTruncated"):
                return
            params["ContinuationToken"] = response["NextContinuationToken"]

    def _batch_delete(self, items: list[dict[str, Any]]) -> None:
        requests = [
            {"DeleteRequest": {"Key": {"pk": item["pk"], "sk": item["sk"]}}} for item in items
        ]
        for attempt in range(8):
            response = self._ddb.batch_write_item(RequestItems={self._table: requests})
            requests = response.get("UnprocessedItems", {}).get(self._table, [])
            if not requests:
                return
            time.sleep(min(0.05 * 2**attempt, 1.0))
        raise APIError("The conversation could not be deleted completely; try again.")

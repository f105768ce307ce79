"""The conversation store against moto: keys, paging, isolation, conflicts, S3, expiry,
and the DynamoDB cost of a turn (counted with botocore's event hooks)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.tables import create_table
from services.chat.completions import ChatService
from services.chat.conversation import ConversationChat
from services.conversations.store import (
    CONVERSATION_ID,
    ConversationConflict,
    ConversationStore,
    new_conversation_id,
)
from services.errors import InvalidRequest, NotFound
from services.models.catalogue import Catalogue
from services.providers.base import Message, TextPart, ToolCall
from services.providers.local import LocalProvider
from services.wire.openai import parse_chat_request

TABLE = "switchboard-test"
BUCKET = "switchboard-test-bucket"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        s3.create_bucket(Bucket=BUCKET)
        yield {"dynamodb": dynamodb, "s3": s3}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(aws: dict[str, Any], clock: Clock) -> ConversationStore:
    return ConversationStore(
        aws["dynamodb"], TABLE, s3=aws["s3"], bucket=BUCKET, retention_days=30, clock=clock
    )


def user(text: str) -> Message:
    return Message("user", [TextPart(text)])


def assistant(text: str) -> Message:
    return Message("assistant", [TextPart(text)])


def test_ids_are_conv_and_26_characters_and_time_ordered() -> None:
    first, second = new_conversation_id(1000.0), new_conversation_id(1001.0)
    assert CONVERSATION_ID.match(first) and len(first) == len("conv_") + 26
    assert first < second


def test_create_get_and_one_query_history(store: ConversationStore) -> None:
    conv = store.create("a", title="Plans", system_prompt="Be brief.", metadata={"k": "v"})
    assert store.get("a", conv.id) == conv
    stored = store.append_turn(conv, [user("hello")], assistant("hi"))
    assert (stored.version, stored.message_count) == (1, 2)
    history = store.history("a", conv.id)
    assert history.conversation == stored
    assert [(m.seq, m.message.role, m.message.text) for m in history.messages] == [
        (0, "user", "hello"),
        (1, "assistant", "hi"),
    ]


def test_keys_begin_with_the_tenant(store: ConversationStore, aws: dict[str, Any]) -> None:
    conv = store.create("tenant-a")
    store.append_turn(conv, [user("x")], assistant("y"))
    items = aws["dynamodb"].scan(TableName=TABLE)["Items"]
    keys = sorted(item["sk"]["S"] for item in items)
    assert keys == ["META", "MSG#0000000000", "MSG#0000000001"]
    assert {item["pk"]["S"] for item in items} == {f"TENANT#tenant-a#CONV#{conv.id}"}


def test_another_tenant_sees_nothing(store: ConversationStore) -> None:
    conv = store.create("a", title="secret")
    for call in (
        lambda: store.get("b", conv.id),
        lambda: store.history("b", conv.id),
        lambda: store.rename("b", conv.id, "mine"),
        lambda: store.delete("b", conv.id),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.code == "conversation_not_found"
    assert store.list_conversations("b").items == []
    assert store.get("a", conv.id).title == "secret"


def test_malformed_id_is_400(store: ConversationStore) -> None:
    for bad in ("conv_short", "CONV_" + "a" * 26, "conv_" + "u" * 26, "x"):
        with pytest.raises(InvalidRequest) as caught:
            store.get("a", bad)
        assert caught.value.code == "invalid_conversation_id"


def test_list_is_newest_first_with_an_opaque_cursor(store: ConversationStore, clock: Clock) -> None:
    ids = []
    for i in range(5):
        clock.now += 1
        ids.append(store.create("a", title=f"c{i}").id)
    store.create("b")
    clock.now += 1
    store.rename("a", ids[0], "renamed")  # the most recently updated comes first
    expected = [ids[0], ids[4], ids[3], ids[2], ids[1]]
    seen, cursor, pages = [], None, 0
    while True:
        page = store.list_conversations("a", limit=2, after=cursor)
        seen += [c.id for c in page.items]
        pages += 1
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
        assert cursor is not None and "TENANT" not in cursor
    assert seen == expected and pages == 3


def test_malformed_or_foreign_cursor_is_400(store: ConversationStore, clock: Clock) -> None:
    for _ in range(3):
        clock.now += 1
        store.create("a")
    cursor = store.list_conversations("a", limit=1).next_cursor
    assert cursor is not None
    for bad, tenant in (("not-a-cursor!", "a"), ("e30", "a"), (cursor, "b")):
        with pytest.raises(InvalidRequest) as caught:
            store.list_conversations(tenant, after=bad)
        assert caught.value.code == "invalid_cursor" and caught.value.param == "after"


def test_a_stale_turn_is_a_conflict_and_stores_nothing(store: ConversationStore) -> None:
    conv = store.create("a")
    store.append_turn(conv, [user("first")], assistant("one"))
    with pytest.raises(ConversationConflict) as caught:
        store.append_turn(conv, [user("stale")], assistant("two"))  # read at version 0
    assert caught.value.status == 409
    history = store.history("a", conv.id)
    assert [m.message.text for m in history.messages] == ["first", "one"]
    assert history.conversation.version == 1


def test_a_turn_on_a_deleted_conversation_is_404(store: ConversationStore) -> None:
    conv = store.create("a")
    store.delete("a", conv.id)
    with pytest.raises(NotFound):
        store.append_turn(conv, [user("x")], assistant("y"))


def test_large_messages_go_to_s3_and_read_back(
    store: ConversationStore, aws: dict[str, Any]
) -> None:
    conv = store.create("a")
    big = "word " * 100_000  # 500 KB: more than a DynamoDB item holds
    store.append_turn(conv, [user(big)], assistant("short"))
    items = {i["sk"]["S"]: i for i in aws["dynamodb"].scan(TableName=TABLE)["Items"]}
    key = items["MSG#0000000000"]["s3_key"]["S"]
    assert "content" not in items["MSG#0000000000"]
    assert key.startswith(f"tenants/a/conversations/{conv.id}/0000000000-")
    # Tagged, so the bucket's lifecycle expires it with the conversation's messages.
    tag_set = aws["s3"].get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    assert tag_set == [{"Key": "switchboard-retention", "Value": "conversation"}]
    assert "content" in items["MSG#0000000001"]
    history = store.history("a", conv.id)
    assert history.messages[0].message.text == big
    assert store.messages("a", conv.id).items[0].message.text == big
    store.delete("a", conv.id)
    assert aws["s3"].list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_tool_calls_and_images_round_trip(store: ConversationStore) -> None:
    conv = store.create("a")
    call = Message("assistant", [], tool_calls=[ToolCall("call_1", "lookup", '{"q": 1}')])
    conv = store.append_turn(conv, [user("look it up")], call)
    result = Message("tool", [TextPart("42")], tool_call_id="call_1")
    store.append_turn(conv, [result], assistant("It is 42."))
    messages = [m.message for m in store.history("a", conv.id).messages]
    assert messages[1] == call and messages[2] == result


def test_delete_removes_everything(store: ConversationStore, aws: dict[str, Any]) -> None:
    conv = store.create("a")
    for i in range(15):  # 30 messages: two BatchWriteItem calls
        conv = store.append_turn(conv, [user(f"u{i}")], assistant(f"a{i}"))
    other = store.create("a")
    store.delete("a", conv.id)
    remaining = aws["dynamodb"].scan(TableName=TABLE)["Items"]
    assert {i["pk"]["S"] for i in remaining} == {f"TENANT#a#CONV#{other.id}"}
    with pytest.raises(NotFound):
        store.delete("a", conv.id)


def test_messages_page_oldest_first(store: ConversationStore) -> None:
    conv = store.create("a")
    for i in range(3):
        conv = store.append_turn(conv, [user(f"u{i}")], assistant(f"a{i}"))
    first = store.messages("a", conv.id, limit=4)
    assert [m.message.text for m in first.items] == ["u0", "a0", "u1", "a1"]
    assert first.has_more and first.next_cursor == "msg_0000000003"
    rest = store.messages("a", conv.id, limit=4, after=first.next_cursor)
    assert [m.message.text for m in rest.items] == ["u2", "a2"] and not rest.has_more
    with pytest.raises(InvalidRequest):
        store.messages("a", conv.id, after="garbage")


def test_expired_items_are_invisible(
    store: ConversationStore, clock: Clock, aws: dict[str, Any]
) -> None:
    old = store.create("a", title="old")
    old = store.append_turn(old, [user("early")], assistant("reply"))
    clock.now += 20 * 86_400
    old = store.append_turn(old, [user("late")], assistant("reply 2"))  # refreshes META
    clock.now += 15 * 86_400  # the first turn's messages are 35 days old, META 15
    assert [m.message.text for m in store.history("a", old.id).messages] == ["late", "reply 2"]
    other = store.create("a", title="new")
    clock.now += 20 * 86_400  # META of `old` is now 35 days past its last turn
    with pytest.raises(NotFound):
        store.get("a", old.id)
    with pytest.raises(NotFound):
        store.history("a", old.id)
    assert [c.id for c in store.list_conversations("a").items] == [other.id]
    # moto never deletes them: the items are still there, only ignored.
    assert len(aws["dynamodb"].scan(TableName=TABLE)["Items"]) >= 5


# -- the cost of a turn ---------------------------------------------------------------


def count_calls(client: Any) -> list[str]:
    calls: list[str] = []

    def record(event_name: str, **_: object) -> None:
        calls.append(event_name.rsplit(".", 1)[-1])

    client.meta.events.register("before-call.dynamodb", record)
    return calls


def chat_request(cid: str, text: str, *, stream: bool = False) -> Any:
    return parse_chat_request(
        {
            "model": "local/simulator",
            "messages": [{"role": "user", "content": text}],
            "metadata": {"conversation_id": cid},
            "stream": stream,
        }
    )


async def streamed_text(frames: Any) -> str:
    """The content deltas of an SSE stream, joined."""
    body = b"".join([chunk async for chunk in frames]).decode()
    assert body.endswith("data: [DONE]\n\n")
    text = ""
    for line in body.splitlines():
        if line.startswith("data: {"):
            data = json.loads(line[len("data: ") :])
            text += data["choices"][0]["delta"].get("content") or "" if data["choices"] else ""
    return text


@pytest.mark.parametrize("stream", [False, True])
def test_a_turn_costs_one_query_and_one_transaction(
    store: ConversationStore, aws: dict[str, Any], stream: bool
) -> None:
    chat = ConversationChat(ChatService(Catalogue({"local": LocalProvider()})), store)
    conv = store.create("a", system_prompt="Be brief.")
    calls = count_calls(aws["dynamodb"])

    async def turn(text: str) -> str:
        request = chat_request(conv.id, text, stream=stream)
        if stream:
            frames, _ = await chat.stream("a", request, conv.id)
            return await streamed_text(frames)
        body, _ = await chat.complete("a", request, conv.id)
        return str(body["choices"][0]["message"]["content"])

    for i in range(3):
        del calls[:]
        answer = asyncio.run(turn(f"turn {i}"))
        assert f"Turn {i + 1}" in answer
        assert calls == ["Query", "TransactWriteItems"], calls
    assert store.get("a", conv.id).message_count == 6


def test_the_counter_sees_every_call(store: ConversationStore, aws: dict[str, Any]) -> None:
    calls = count_calls(aws["dynamodb"])
    conv = store.create("a")
    store.get("a", conv.id)
    assert calls == ["PutItem", "GetItem"]


def test_conversation_json_is_plain(store: ConversationStore) -> None:
    from services.conversations.api import conversation_json

    conv = store.create("a", title="t", metadata={"k": "v"})
    data = conversation_json(conv)
    assert json.loads(json.dumps(data)) == data
    assert data["object"] == "conversation" and data["metadata"] == {"k": "v"}

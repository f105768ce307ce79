"""Conversations through both front doors of the local stack, with the official openai SDK
where a user would use it: memory across turns, the Conversations API, tenant isolation,
races, abandoned streams, large messages, context trimming, expiry and bad input."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from devstack.stack import LocalStack, StackConfig
from services.tenancy.keys import KeyStore
from tests.integration.doors import api_and_stream

MODEL = "local/simulator"
DOORS = ["api", "stream"]  # for the Conversations API itself (control plane)
CHAT_DOORS = api_and_stream()  # for chat turns (POST /v1/chat/completions: the worker)


def door_url(stack: LocalStack, door: str) -> str:
    return {"api": stack.api_url, "stream": stack.stream_url}[door]


def sdk(stack: LocalStack, door: str, key: str | None = None) -> openai.OpenAI:
    # No automatic retries: the tests look at every 409 themselves.
    return openai.OpenAI(
        base_url=door_url(stack, door), api_key=key or stack.api_key, max_retries=0
    )


def http(stack: LocalStack, door: str, key: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=door_url(stack, door),
        headers={"authorization": f"Bearer {key or stack.api_key}"},
        timeout=30,
    )


def new_tenant(stack: LocalStack, tenant: str) -> str:
    return KeyStore(stack.client("dynamodb"), stack.config.table).create(tenant).secret


def create(stack: LocalStack, door: str = "api", key: str | None = None, **fields: Any) -> str:
    with http(stack, door, key) as client:
        response = client.post("/conversations", json=fields)
    assert response.status_code == 200, response.text
    cid: str = response.json()["id"]
    return cid


def get(stack: LocalStack, cid: str, door: str = "api", **query: Any) -> dict[str, Any]:
    with http(stack, door) as client:
        response = client.get(f"/conversations/{cid}", params=query)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def say(client: openai.OpenAI, cid: str, text: str, **extra: Any) -> Any:
    return client.chat.completions.create(
        model=extra.pop("model", MODEL),
        messages=[{"role": "user", "content": text}],
        metadata={"conversation_id": cid},
        **extra,
    )


def streamed(client: openai.OpenAI, cid: str, text: str) -> str:
    chunks = say(client, cid, text, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def reply(turn: int, said: str, received: int, first: str) -> str:
    return (
        f'[local simulator, not a model] Turn {turn}: you said "{said}". '
        f"I received {received} message{'s' if received != 1 else ''}; "
        f'the first user message was "{first}".'
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


# -- memory --------------------------------------------------------------------------


@pytest.mark.parametrize("door", CHAT_DOORS)
def test_three_turns_the_third_answer_depends_on_the_first(stack: LocalStack, door: str) -> None:
    cid = create(stack, door, title="Trip", system_prompt="Be brief.")
    client = sdk(stack, door)
    answers = []
    for text in ("I am going to Lisbon", "for a week", "what city did I name?"):
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=[{"role": "user", "content": text}],
            metadata={"conversation_id": cid},
        )
        assert raw.headers["x-switchboard-conversation-id"] == cid
        assert raw.headers["x-switchboard-trimmed-messages"] == "0"
        completion = raw.parse()
        assert completion.model_extra is not None
        assert completion.model_extra["switchboard"] == {
            "conversation_id": cid,
            "trimmed_messages": 0,
        }
        answers.append(completion.choices[0].message.content)
    # The system prompt and five stored or new messages reached the model, and the third
    # answer still knows what the first turn said.
    assert answers[2] == reply(3, "what city did I name?", 6, "I am going to Lisbon")

    stored = get(stack, cid, door)
    assert stored["message_count"] == 6
    messages = stored["messages"]["data"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert [m["content"] for m in messages[1::2]] == answers


def test_streamed_turns_remember_too(stack: LocalStack) -> None:
    cid = create(stack, "stream")
    client = sdk(stack, "stream")
    assert streamed(client, cid, "one") == reply(1, "one", 1, "one")
    assert streamed(client, cid, "two") == reply(2, "two", 3, "one")
    with client.chat.completions.with_streaming_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "three"}],
        metadata={"conversation_id": cid},
        stream=True,
    ) as response:
        assert response.headers["x-switchboard-conversation-id"] == cid
        assert response.headers["x-switchboard-trimmed-messages"] == "0"
        for _ in response.iter_lines():
            pass
    assert get(stack, cid)["message_count"] == 6


def test_the_openai_sdk_conversation_calls_work(stack: LocalStack) -> None:
    client = sdk(stack, "stream")
    conversation = client.conversations.create(metadata={"topic": "sdk"})
    assert conversation.id.startswith("conv_") and conversation.metadata == {"topic": "sdk"}
    assert client.conversations.retrieve(conversation.id).id == conversation.id
    deleted = client.conversations.delete(conversation.id)
    assert deleted.deleted is True and deleted.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)


# -- the Conversations API -----------------------------------------------------------


@pytest.mark.parametrize("door", DOORS)
def test_create_list_rename_delete(stack: LocalStack, door: str) -> None:
    key = new_tenant(stack, f"crud-{door}")
    with http(stack, door, key) as client:
        created = client.post(
            "/conversations",
            json={"title": "first", "model": MODEL, "system_prompt": "Hi.", "metadata": {"a": "b"}},
        ).json()
        assert created["object"] == "conversation"
        assert (created["title"], created["model"], created["system_prompt"]) == (
            "first",
            MODEL,
            "Hi.",
        )
        assert created["metadata"] == {"a": "b"} and created["message_count"] == 0
        ids = [created["id"]]
        for i in range(4):
            time.sleep(0.002)  # distinct update times
            ids.append(client.post("/conversations", json={"title": f"c{i}"}).json()["id"])

        seen, after = [], None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
            page = client.get("/conversations", params=params).json()
            assert page["object"] == "list" and len(page["data"]) <= 2
            seen += [c["id"] for c in page["data"]]
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            after = page["next_cursor"]
        assert seen == ids[::-1]  # newest first

        renamed = client.patch(f"/conversations/{ids[0]}", json={"title": "renamed"}).json()
        assert renamed["title"] == "renamed"
        assert client.get("/conversations", params={"limit": 1}).json()["data"][0]["id"] == ids[0]

        deleted = client.delete(f"/conversations/{ids[0]}")
        assert deleted.json() == {"id": ids[0], "object": "conversation.deleted", "deleted": True}
        assert client.get(f"/conversations/{ids[0]}").status_code == 404
        assert ids[0] not in [c["id"] for c in client.get("/conversations").json()["data"]]


def test_messages_are_paginated(stack: LocalStack) -> None:
    cid = create(stack)
    client = sdk(stack, "stream")
    for text in ("a", "b", "c"):
        say(client, cid, text)
    first = get(stack, cid, limit=4)["messages"]
    assert [m["content"] for m in first["data"][::2]] == ["a", "b"]
    assert first["has_more"] is True
    rest = get(stack, cid, limit=4, after=first["next_cursor"])["messages"]
    assert rest["data"][0]["content"] == "c"
    assert len(rest["data"]) == 2 and rest["has_more"] is False


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param", "code"),
    [
        ("POST", "/conversations", {"colour": "red"}, 400, "colour", "unknown_parameter"),
        ("POST", "/conversations", {"title": 5}, 400, "title", "invalid_value"),
        ("POST", "/conversations", {"title": "x" * 300}, 400, "title", "string_above_max_length"),
        ("POST", "/conversations", {"model": ""}, 400, "model", "invalid_value"),
        ("POST", "/conversations", {"metadata": {"k": 1}}, 400, "metadata.k", "invalid_value"),
        ("POST", "/conversations", [1], 400, None, "invalid_body"),
        ("GET", "/conversations?limit=0", None, 400, "limit", "invalid_value"),
        ("GET", "/conversations?after=bm9wZQ", None, 400, "after", "invalid_cursor"),
        ("GET", "/conversations?sort=asc", None, 400, "sort", "unknown_parameter"),
        (
            "GET",
            "/conversations/conv_nope",
            None,
            400,
            "conversation_id",
            "invalid_conversation_id",
        ),
        (
            "GET",
            "/conversations/conv_" + "0" * 26,
            None,
            404,
            "conversation_id",
            "conversation_not_found",
        ),
        (
            "DELETE",
            "/conversations/conv_" + "0" * 26,
            None,
            404,
            "conversation_id",
            "conversation_not_found",
        ),
        (
            "PATCH",
            "/conversations/conv_" + "0" * 26,
            {"title": "x"},
            404,
            "conversation_id",
            "conversation_not_found",
        ),
    ],
)
def test_bad_api_input(
    stack: LocalStack,
    door: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    param: str | None,
    code: str,
) -> None:
    with http(stack, door) as client:
        response = client.request(method, path.lstrip("/"), json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert (error["param"], error["code"]) == (param, code)


@pytest.mark.parametrize("door", DOORS)
def test_rename_needs_a_title(stack: LocalStack, door: str) -> None:
    cid = create(stack)
    with http(stack, door) as client:
        response = client.patch(f"conversations/{cid}", json={"name": "x"})
        assert error_of(response)["code"] == "unknown_parameter"
        response = client.patch(f"conversations/{cid}", json={})
        assert error_of(response)["code"] == "missing_required_parameter"


def test_a_cursor_of_another_tenant_is_refused(stack: LocalStack) -> None:
    key = new_tenant(stack, "cursor-owner")
    for _ in range(3):
        create(stack, key=key)
    with http(stack, "api", key) as client:
        cursor = client.get("/conversations", params={"limit": 1}).json()["next_cursor"]
    with http(stack, "api") as client:
        response = client.get("/conversations", params={"after": cursor})
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_cursor"


# -- tenant isolation ----------------------------------------------------------------


@pytest.mark.parametrize("door", CHAT_DOORS)
def test_another_tenant_gets_404_for_everything(stack: LocalStack, door: str) -> None:
    cid = create(stack, title="tenant A's")
    say(sdk(stack, "stream"), cid, "private")
    intruder = new_tenant(stack, f"intruder-{door}")

    with http(stack, door, intruder) as client:
        listed = client.get("/conversations").json()
        assert listed["data"] == []
        for response in (
            client.get(f"conversations/{cid}"),
            client.patch(f"conversations/{cid}", json={"title": "mine now"}),
            client.delete(f"conversations/{cid}"),
        ):
            assert response.status_code == 404, response.text
            assert error_of(response)["code"] == "conversation_not_found"

    other = sdk(stack, door, intruder)
    with pytest.raises(openai.NotFoundError) as plain:
        say(other, cid, "let me in")
    assert plain.value.code == "conversation_not_found"
    with pytest.raises(openai.NotFoundError) as stream:
        streamed(other, cid, "let me in")
    assert stream.value.code == "conversation_not_found"

    stored = get(stack, cid)
    assert stored["title"] == "tenant A's" and stored["message_count"] == 2


# -- races -----------------------------------------------------------------------------


def test_concurrent_turns_lose_nothing_and_duplicate_nothing(stack: LocalStack) -> None:
    """Each turn takes the simulator about a second (chunk_ms), so turns sent together all
    read the same history: one is stored, the rest answer 409 and store nothing."""
    cid = create(stack)
    say(sdk(stack, "stream"), cid, "setup")
    senders = 6
    barrier = threading.Barrier(senders)
    outcomes: dict[str, str] = {}

    def send(i: int) -> None:
        text = f"concurrent {i}"
        client = sdk(stack, "stream")  # the API port once it routes by the table
        barrier.wait()
        try:
            completion = say(client, cid, text)
            outcomes[text] = str(completion.choices[0].message.content)
        except openai.ConflictError as exc:
            assert exc.code == "conversation_conflict"
            outcomes[text] = "409"

    threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outcomes) == senders

    succeeded = {text: answer for text, answer in outcomes.items() if answer != "409"}
    assert succeeded, "at least one turn must win"
    assert len(succeeded) < senders, "the turns did not overlap; the test proves nothing"
    messages = get(stack, cid, limit=100)["messages"]["data"]
    texts = [m["content"] for m in messages]
    assert len(messages) == 2 + 2 * len(succeeded)
    assert [m["role"] for m in messages] == ["user", "assistant"] * (1 + len(succeeded))
    for text, answer in outcomes.items():
        if answer == "409":
            assert text not in texts  # nothing of a refused turn is stored
        else:
            at = texts.index(text)
            assert texts.count(text) == 1 and texts[at + 1] == answer
    # Sent again on the new history, a refused turn is stored.
    refused = next(text for text, answer in outcomes.items() if answer == "409")
    assert f'you said "{refused}"' in str(
        say(sdk(stack, "stream"), cid, refused).choices[0].message.content
    )


def test_the_sdk_retries_a_conflict_on_the_new_history(stack: LocalStack) -> None:
    cid = create(stack)
    client = openai.OpenAI(base_url=stack.stream_url, api_key=stack.api_key, max_retries=4)
    barrier = threading.Barrier(3)
    errors: list[Exception] = []

    def send(i: int) -> None:
        barrier.wait()
        try:
            say(client, cid, f"retry {i}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    texts = [m["content"] for m in get(stack, cid)["messages"]["data"]]
    assert sorted(texts[::2]) == ["retry 0", "retry 1", "retry 2"]


# -- streams the client abandons -------------------------------------------------------


def test_an_abandoned_stream_still_stores_the_whole_reply(stack: LocalStack) -> None:
    cid = create(stack)
    client = sdk(stack, "stream")
    stream = say(client, cid, "tell me everything", stream=True)
    received = [next(stream), next(stream)]
    stream.close()  # the client goes away after two chunks
    assert len(received) == 2
    assert get(stack, cid)["message_count"] == 0  # the reply is still being made

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        stored = get(stack, cid)
        if stored["message_count"] == 2:
            break
        time.sleep(0.2)
    messages = get(stack, cid)["messages"]["data"]
    assert [m["content"] for m in messages] == [
        "tell me everything",
        reply(1, "tell me everything", 1, "tell me everything"),
    ]


# -- bad chat input --------------------------------------------------------------------


@pytest.mark.parametrize("door", CHAT_DOORS)
def test_bad_chat_input_leaves_the_conversation_unchanged(stack: LocalStack, door: str) -> None:
    cid = create(stack, system_prompt="Be brief.")
    client = sdk(stack, door)
    say(client, cid, "hello")
    before = get(stack, cid)

    with pytest.raises(openai.NotFoundError) as unknown:
        say(client, "conv_" + "0" * 26, "anyone there?")
    assert unknown.value.code == "conversation_not_found"
    with pytest.raises(openai.BadRequestError) as malformed:
        say(client, "conv_123", "hello")
    assert malformed.value.code == "invalid_conversation_id"
    assert malformed.value.param == "metadata.conversation_id"
    with pytest.raises(openai.NotFoundError) as model:
        say(client, cid, "hello", model="local/no-such-model")
    assert model.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as history:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            metadata={"conversation_id": cid},
        )
    assert history.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as system:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "system", "content": "new rules"}],
            metadata={"conversation_id": cid},
        )
    assert system.value.param == "messages"

    assert get(stack, cid) == before


# -- expiry ------------------------------------------------------------------------------


def _expire(stack: LocalStack, cid: str, sk: str, tenant: str = "dev") -> None:
    stack.client("dynamodb").update_item(
        TableName=stack.config.table,
        Key={"pk": {"S": f"TENANT#{tenant}#CONV#{cid}"}, "sk": {"S": sk}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}},
    )


def test_expired_items_are_invisible(stack: LocalStack) -> None:
    cid = create(stack)
    client = sdk(stack, "stream")
    say(client, cid, "first")
    say(client, cid, "second")
    _expire(stack, cid, "MSG#0000000000")  # the first user message has expired
    assert get(stack, cid)["messages"]["data"][0]["content"] != "first"
    # The model no longer receives it either (3 live messages and the new one).
    answer = say(client, cid, "third").choices[0].message.content
    assert answer == reply(2, "third", 4, "second")

    _expire(stack, cid, "META")
    for door in DOORS:
        with http(stack, door) as h:
            assert h.get(f"conversations/{cid}").status_code == 404
            assert cid not in [c["id"] for c in h.get("conversations").json()["data"]]
    with pytest.raises(openai.NotFoundError):
        say(client, cid, "still there?")


# -- a small model: trimming, long turns, large messages -------------------------------


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A 200-token simulator; requests up to 2 MB, turns up to 400,000 characters."""
    config = StackConfig(
        max_request_bytes=2 * 1024 * 1024,
        log_dir=tmp_path_factory.mktemp("small-stack-logs"),
        extra_env={
            "SWITCHBOARD_LOCAL_CONTEXT_TOKENS": "200",
            "SWITCHBOARD_MAX_TURN_CHARS": "400000",
        },
    )
    with LocalStack(config) as running:
        yield running


def test_old_turns_are_left_out_when_the_window_is_full(small_stack: LocalStack) -> None:
    cid = create(small_stack, system_prompt="Keep it short.")
    client = sdk(small_stack, "stream")
    # Window 200, reply budget 50: 150 tokens for the prompt. The system prompt is 6, a
    # 20-word user message 23 and the simulator's reply about 30.
    trimmed_seen = []
    for turn in range(1, 7):
        text = f"turn{turn} " + "word " * 19
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL,
            messages=[{"role": "user", "content": text}],
            metadata={"conversation_id": cid},
        )
        completion = raw.parse()
        trimmed = int(raw.headers["x-switchboard-trimmed-messages"])
        assert completion.model_extra is not None
        assert completion.model_extra["switchboard"]["trimmed_messages"] == trimmed
        received = 1 + 2 * (turn - 1) - trimmed + 1  # system prompt, kept history, new
        answer = str(completion.choices[0].message.content)
        assert f"I received {received} messages" in answer
        assert completion.usage is not None and completion.usage.prompt_tokens <= 150
        trimmed_seen.append(trimmed)
        assert trimmed % 2 == 0  # whole turns: a user message and its reply
    assert trimmed_seen[0] == 0 and trimmed_seen[-1] > 0
    # The newest turn is always sent; the oldest kept is no longer turn 1.
    assert 'the first user message was "turn1' not in answer
    # Trimming shapes the request only: every message is still stored.
    assert get(small_stack, cid, limit=100)["message_count"] == 12

    # A streamed turn reports it in its headers.
    with sdk(small_stack, "stream").chat.completions.with_streaming_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "streamed"}],
        metadata={"conversation_id": cid},
        stream=True,
    ) as response:
        assert int(response.headers["x-switchboard-trimmed-messages"]) > 0
        for _ in response.iter_lines():
            pass


def test_a_turn_that_is_too_long_is_refused(small_stack: LocalStack) -> None:
    cid = create(small_stack)
    client = sdk(small_stack, "stream")
    with pytest.raises(openai.BadRequestError) as caught:
        say(client, cid, "x" * 400_001)
    assert caught.value.code == "turn_too_long" and caught.value.param == "messages"
    assert get(small_stack, cid)["message_count"] == 0


@pytest.mark.parametrize("door", CHAT_DOORS)
def test_a_large_message_goes_to_s3_and_reads_back_intact(
    small_stack: LocalStack, door: str
) -> None:
    cid = create(small_stack)
    big = " ".join(f"w{i}" for i in range(55_000))  # about 370 KB
    say(sdk(small_stack, door), cid, big)
    stored = get(small_stack, cid, door)["messages"]["data"]
    assert stored[0]["content"] == big

    item = small_stack.client("dynamodb").get_item(
        TableName=small_stack.config.table,
        Key={"pk": {"S": f"TENANT#dev#CONV#{cid}"}, "sk": {"S": "MSG#0000000000"}},
    )["Item"]
    assert "content" not in item
    key = item["s3_key"]["S"]
    assert key.startswith(f"tenants/dev/conversations/{cid}/")
    s3 = small_stack.client("s3")
    assert s3.head_object(Bucket=small_stack.config.bucket, Key=key)["ContentLength"] > 350_000
    # The next turn reads it back from S3 with its history, and (at 55,000 words, in a
    # 200-token window) leaves that turn out.
    completion = say(sdk(small_stack, door), cid, "and now?")
    assert completion.model_extra is not None
    assert completion.model_extra["switchboard"]["trimmed_messages"] == 2

    with http(small_stack, door) as client:
        assert client.delete(f"conversations/{cid}").status_code == 200
    listed = s3.list_objects_v2(
        Bucket=small_stack.config.bucket, Prefix=f"tenants/dev/conversations/{cid}/"
    )
    assert listed["KeyCount"] == 0

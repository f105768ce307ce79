"""The console against the local stack, as a person uses it: a streamed chat, an agent run
approved from the console, a run's timeline across a reload, a tool form's checks, the
usage chart. One stack for the module; each test has a tenant of its own.

The door a test's console is served from is a parameter: `stream` (the stream front door,
which relays streams as they come) and `api` (the gateway behind the API Gateway
emulator, which answers a stream whole until AI routes stream through it).
"""

from __future__ import annotations

import base64
import datetime
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack, StackConfig
from tests.browser.conftest import Tenant, console_url, screenshot, sign_in

# Streaming is shown token by token only where the door streams: add "api" when the API
# Gateway emulator relays AI routes incrementally.
STREAMING_DOORS = ["api", "stream"]
CHUNK_MS = 40.0
LABEL = "[local simulator, not a model]"
# Three different 1x1 PNGs (red, green, blue).
PNGS = [
    base64.b64decode(b)
    for b in (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC",
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNg+M8AAAICAQB7CYF4AAAAAElFTkSuQmCC",
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYPgPAAEDAQAIicLsAAAAAElFTkSuQmCC",
    )
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        chunk_ms=CHUNK_MS,  # a streamed answer takes a second: long enough to see it grow
        run_poll_seconds=0.2,
        log_dir=tmp_path_factory.mktemp("browser-stack-logs"),
    )
    with LocalStack(config) as running:
        yield running


def s3_keys(stack: LocalStack, tenant: Tenant) -> set[str]:
    listed = stack.client("s3").list_objects_v2(
        Bucket=stack.config.bucket, Prefix=f"tenants/{tenant.id}/documents/"
    )
    return {o["Key"] for o in listed.get("Contents", [])}


@pytest.mark.parametrize("door", STREAMING_DOORS)
def test_a_streamed_chat_appears_token_by_token(page: Any, stack: LocalStack, door: str) -> None:
    tenant = Tenant(stack, f"browser-chat-{door}")
    sign_in(page, stack, door, tenant.key, "#/chat")
    page.wait_for_selector("#chat-model option[value=fast]", state="attached")
    # Record the answer's length each time the page changes it, with the time.
    page.evaluate(
        """() => {
          window.growth = [];
          new MutationObserver(() => {
            const answer = document.querySelector('.message.assistant .content');
            if (answer) window.growth.push([performance.now(), answer.textContent.length]);
          }).observe(document.getElementById('chat-transcript'),
                     {subtree: true, childList: true, characterData: true});
        }"""
    )
    question = "What do tides and turbines share?"
    page.fill("#chat-input", question)
    page.click("#chat-send")
    page.wait_for_selector(".message.assistant[data-done=true]")
    growth: list[list[float]] = page.evaluate("window.growth")
    answer = page.inner_text(".message.assistant .content")
    assert answer.startswith(f'{LABEL} Turn 1: you said "{question}"')
    words = len(answer.split())
    lengths = [length for _, length in growth if length]
    # The text grew a word or a few at a time (a network read may carry several), in order...
    assert lengths == sorted(lengths) and len(set(lengths)) >= max(5, words // 3), lengths
    # ...over the time the simulator took to send them, not all at once at the end.
    spread = max(t for t, n in growth if n) - min(t for t, n in growth if n)
    assert spread >= CHUNK_MS * (words - 1) * 0.5, (spread, words)

    meta = page.locator(".message.assistant .meta")
    assert f"in / {words} out tokens" in meta.inner_text()
    cost = page.locator(".message.assistant .cost")
    page.wait_for_function(
        "() => document.querySelector('.message.assistant .cost').dataset.micros !== undefined"
    )
    assert cost.inner_text() == "cost $0.000000 (as recorded: local/simulator)"
    screenshot(page, f"chat-streamed-{door}")


def test_an_asset_organizer_run_is_approved_from_the_console_and_its_objects_move(
    page: Any, stack: LocalStack
) -> None:
    tenant = Tenant(stack, "browser-organize")
    images = [tenant.upload(f"photo-{i}.png", png) for i, png in enumerate(PNGS)]
    before = s3_keys(stack, tenant)
    assert len(before) == 3
    sign_in(page, stack, "stream", tenant.key, "#/runs")
    page.select_option("#agent-name", "asset_organizer")
    page.fill("#agent-max_images", "10")
    page.click("#agent-start")

    page.wait_for_selector("#run-pending .pending.question")
    run_id = page.url.rsplit("/", 1)[1]
    assert "3 images" in page.inner_text("#run-pending .prompt")
    page.click("#run-pending button.option:has-text('by subject')")

    page.wait_for_selector("#run-pending .pending.approval")
    prompt = page.inner_text("#run-pending .prompt")
    assert prompt.startswith("Move 3 images into 1 folder:") and "subject/classify/" in prompt
    assert s3_keys(stack, tenant) == before  # nothing moves before the approval
    screenshot(page, "agent-awaiting-approval")
    page.click("#pending-approve")

    page.wait_for_selector("#run-status.succeeded")
    page.wait_for_selector("#run-timeline li[data-type='run.succeeded']")
    after = s3_keys(stack, tenant)
    assert not before & after
    for image in images:
        prefix = f"tenants/{tenant.id}/documents/subject/classify/"
        assert any(k.startswith(prefix) and image["id"] in k for k in after), after
    run = tenant.get(f"/runs/{run_id}")
    assert run["status"] == "succeeded" and len(run["result"]["moved"]) == 3
    assert page.inner_text("#run-outcome .output").startswith(LABEL)
    screenshot(page, "agent-approved")


def pipeline(steps: int) -> dict[str, Any]:
    step = {
        "model": "local/simulator",
        "messages": [{"role": "user", "content": "Tell me about tides, turbines and the sea."}],
    }
    return {"kind": "pipeline", "input": {"steps": [step] * steps}, "background": True}


@pytest.mark.parametrize("door", ["stream", "api"])
def test_a_runs_timeline_resumes_after_a_reload(page: Any, stack: LocalStack, door: str) -> None:
    tenant = Tenant(stack, f"browser-timeline-{door}")
    asked: list[str | None] = []
    page.on(
        "request",
        lambda r: asked.append(r.headers.get("last-event-id")) if "/events" in r.url else None,
    )
    sign_in(page, stack, door, tenant.key)
    run = tenant.post("/runs", pipeline(3))  # about 3 x 35 events, 40 ms apart
    page.goto(page.url.split("#")[0] + f"#/runs/{run['id']}")
    page.wait_for_function(
        "() => document.querySelectorAll('#run-timeline [data-seq]').length >= 12"
    )
    asked.append("reload")
    page.reload()
    page.wait_for_selector("#run-status.succeeded")
    page.wait_for_selector("#run-timeline li[data-type='run.succeeded']")
    seqs = [
        int(seq)
        for seq in page.eval_on_selector_all(
            "#run-timeline [data-seq]", "found => found.map(e => e.dataset.seq)"
        )
    ]
    events = httpx.get(
        f"{stack.stream_url}/runs/{run['id']}/events", headers=tenant.headers, timeout=30
    ).text
    total = sum(1 for line in events.splitlines() if line.startswith("id: "))
    assert seqs == list(range(1, total + 1))  # each event once, none missing
    # After the reload it showed the events it had kept and asked only for what came after.
    resumed = next(a for a in asked[asked.index("reload") + 1 :] if a is not None)
    assert asked[0] is None and 12 <= int(resumed) < total, asked
    assert page.locator("#run-timeline li.error").count() == 0
    screenshot(page, f"run-timeline-after-reload-{door}")


def test_a_tool_form_rejects_bad_input_with_the_field_named(page: Any, stack: LocalStack) -> None:
    tenant = Tenant(stack, "browser-tools")
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    sign_in(page, stack, "stream", tenant.key, "#/tools/generate_tags")
    page.wait_for_selector("#tool-form [data-field=max_tags]")

    # The form knows the schema: 99 is over max_tags' maximum, and nothing is sent.
    page.fill("#tool-text", "Tides, turbines and the sea")
    page.fill("#tool-max_tags", "99")
    page.click("#tool-run")
    error = page.locator("[data-field=max_tags] .field-error")
    assert error.inner_text() == "max_tags: must be at most 30."
    assert page.locator("[data-field=max_tags].invalid").count() == 1
    assert not [url for url in posted if "/tools/" in url]

    # What only the server checks (a text or a document: exactly one) comes back as a 400
    # whose `param` names the field, and the form marks it.
    page.fill("#tool-text", "")
    page.fill("#tool-max_tags", "")
    page.click("#tool-run")
    page.wait_for_selector("#tool-result .error")
    assert "400 invalid_tool_input (input.text)" in page.inner_text("#tool-result .error")
    assert page.locator("[data-field=text].invalid").count() == 1
    assert page.inner_text("[data-field=text] .field-error").startswith(
        "The server refused text: Invalid input for tool 'generate_tags': text: give exactly "
        "one of 'text' or 'document_id'."
    )
    assert [url for url in posted if url.endswith("/tools/generate_tags")]
    screenshot(page, "tool-form-server-error")

    # And good input runs the tool.
    page.fill("#tool-text", "Tides, turbines and the sea")
    page.click("#tool-run")
    page.wait_for_selector("#tool-result pre.json")
    assert json.loads(page.inner_text("#tool-result pre.json"))["tags"]


def test_the_usage_chart_shows_the_calls_just_made(page: Any, stack: LocalStack) -> None:
    tenant = Tenant(stack, "browser-usage")
    for text in ("one", "two words", "three more words"):
        body = {"model": "local/simulator", "messages": [{"role": "user", "content": text}]}
        tenant.post("/chat/completions", body)
    deadline = time.monotonic() + 10
    while (report := tenant.get("/usage?group_by=day,model"))["totals"]["calls"] < 3:
        assert time.monotonic() < deadline, report
        time.sleep(0.1)
    [row] = report["data"]
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert (row["day"], row["model"], row["calls"]) == (today, "local/simulator", 3)

    sign_in(page, stack, "api", tenant.key, "#/usage")
    bar = f"#chart-calls rect.bar[data-day='{today}'][data-model='local/simulator']"
    page.wait_for_selector(bar)
    assert page.get_attribute(bar, "data-value") == "3"
    assert page.locator("#chart-calls rect.bar").count() == 1
    tokens = f"#chart-tokens rect.bar[data-day='{today}']"
    assert page.get_attribute(tokens, "data-value") == str(
        row["input_tokens"] + row["output_tokens"]
    )
    assert page.inner_text("#usage-totals").startswith("3 calls")
    screenshot(page, "usage-chart")


def test_conversations_documents_and_the_admin_view_work_from_the_gateways_console(
    page: Any, stack: LocalStack, tmp_path: Any
) -> None:
    """The pages the tests above do not drive: each does its main job, with no page error."""
    tenant = Tenant(stack, "browser-pages")
    sign_in(page, stack, "api", tenant.key, "#/chat")
    page.check("#chat-store")  # the history is kept server-side, as a conversation
    for n, text in enumerate(("Hello there", "And again"), start=1):
        page.fill("#chat-input", text)
        page.click("#chat-send")
        page.wait_for_selector(f".message.assistant:nth-of-type({2 * n})[data-done=true]")
    [conversation] = tenant.get("/conversations")["data"]
    assert conversation["message_count"] == 4

    page.click("#nav a[data-page=conversations]")
    page.click(f"#conversation-list a[href$='{conversation['id']}']")
    page.wait_for_selector("#conversation-messages .message.assistant")
    roles = page.eval_on_selector_all(
        "#conversation-messages .message .role", "found => found.map(e => e.textContent)"
    )
    assert roles == ["user", "assistant", "user", "assistant"]
    assert "Turn 2" in page.inner_text("#conversation-messages")

    note = tmp_path / "note.md"
    note.write_text("# Notes\n\nThe north quay needs new fenders before winter.\n")
    page.click("#nav a[data-page=documents]")
    page.set_input_files("#document-file", str(note))
    page.click("#document-upload")
    page.wait_for_selector("#document-result .ok")
    [document] = tenant.get("/documents")["data"]
    assert (document["filename"], document["kind"]) == ("note.md", "markdown")
    page.wait_for_selector(f"#document-list tr[data-document='{document['id']}']")

    page.click("#nav a[data-page=admin]")
    page.fill("#admin-key", stack.admin_key)
    page.click("#admin-sign-in")
    page.click(f"#tenant-list tr[data-tenant='{tenant.id}'] a")
    page.wait_for_selector("#key-list tr", state="attached")
    page.fill("#key-name", "from-the-console")
    page.click("#key-create")
    secret = page.inner_text("#key-secret pre")
    models = httpx.get(
        f"{stack.api_url}/models", headers={"authorization": f"Bearer {secret}"}, timeout=30
    )
    assert models.status_code == 200  # the key the console minted works
    page.fill("#limit-rpm", "60")
    page.click("#limits-save")
    page.wait_for_selector("#tenant-head :text('60 rpm')")
    admin = {"authorization": f"Bearer {stack.admin_key}"}
    limits = httpx.get(f"{stack.api_url}/admin/tenants/{tenant.id}", headers=admin).json()
    assert limits["limits"]["rpm"] == 60
    screenshot(page, "admin-tenant")


def test_the_sse_parser_reads_frames_split_anywhere(page: Any, stack: LocalStack) -> None:
    """The console's own SSE reader (console/static/sse.js), fed a stream cut at every
    character: line endings of all three kinds, comments, multi-line data, an id that
    carries over, a field without a space, a byte order mark."""
    page.goto(console_url(stack, "stream"))
    stream = (
        "\ufeff: keep-alive\r\n\r\n"
        'id: 1\nevent: text.delta\ndata: {"a": 1}\n\n'
        "data:first\r\ndata: second\r\r"
        "id: 7\n\n"  # an id without data: no event, but the id carries over
        "event: end\ndata: é ☃\n\n"
        "data: cut off at the end"
    )
    whole, pieces = page.evaluate(
        """async (text) => {
          const { SSEParser } = await import('./sse.js');
          const once = new SSEParser().feed(text);
          const parser = new SSEParser();
          const pieces = [];
          for (const c of text) pieces.push(...parser.feed(c));
          return [once, pieces];
        }""",
        stream,
    )
    expected = [
        {"type": "text.delta", "data": '{"a": 1}', "id": "1"},
        {"type": "message", "data": "first\nsecond", "id": "1"},
        {"type": "end", "data": "é ☃", "id": "7"},
    ]
    assert whole == expected and pieces == expected

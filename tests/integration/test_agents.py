"""Agents through the front doors, on a local stack with two workers.

The agents' own model calls go to a scripted upstream (the fake OpenAI, answering a
planned sequence of tool calls): each run names it with `"model"`. Tools keep their
routes, which this stack's catalogue sends to the local simulator. Each test has a tenant
of its own, so one test's documents are not another's.
"""

from __future__ import annotations

import base64
import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack, StackConfig
from services.runs.store import RunStore
from services.tenancy.keys import KeyStore
from tests.fakes import openai as openai_fake
from tests.fakes.script import Script, ToolCallScript
from tests.fakes.upstream import FakeUpstream
from tests.integration.doors import api_and_stream
from tests.pdf import make_pdf

AGENT_MODEL = f"openai/{openai_fake.MODEL}"
CATALOGUE = """
[embeddings]
"local/embedding" = { dimensions = 256 }

[routes]
fast = ["local/simulator"]
smart = ["local/simulator"]
"""
PAGES = [
    "Harbour survey 2026\nThe north quay needs new fenders before winter.",
    "Dredging the channel to nine metres lets the larger ferries berth at low tide.",
    "Budget: the fenders cost 1.2 million; dredging costs 3.4 million.",
]
# Three different 1x1 PNGs (red, green, blue).
PNGS = [
    base64.b64decode(b)
    for b in (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC",
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNg+M8AAAICAQB7CYF4AAAAAElFTkSuQmCC",
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYPgPAAEDAQAIicLsAAAAAElFTkSuQmCC",
    )
]
FIVE = ["extract_text", "analyze_themes", "generate_tags", "summarize", "suggest_related"]


class PatientStack(LocalStack):
    """Two workers starting while other suites run can take longer than the default 30 s
    on a small machine: wait up to 90 s before calling start-up a failure."""

    def _wait_ready(self, probes: dict[str, str], timeout: float = 30.0) -> None:
        super()._wait_ready(probes, timeout=max(timeout, 90.0))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    upstream = openai_fake.FakeOpenAI().start()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def stack(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    catalogue = tmp_path_factory.mktemp("agents-catalogue") / "models.toml"
    catalogue.write_text(CATALOGUE)
    config = StackConfig(
        workers=2,
        first_token_ms=300,  # each model step of a tool takes a moment: room to kill a worker
        chunk_ms=5,
        words_per_chunk=4,
        run_lease_seconds=2,
        run_heartbeat_seconds=0.5,
        run_watchdog_seconds=1,
        run_poll_seconds=0.2,
        log_dir=tmp_path_factory.mktemp("agents-logs"),
        extra_env={
            **openai_fake.BINDING.env(fake.url),
            "SWITCHBOARD_CATALOGUE": str(catalogue),
            "SWITCHBOARD_RETRY_BACKOFF_SECONDS": "0.01",
        },
    )
    with PatientStack(config) as running:
        yield running


@pytest.fixture
def scripts(fake: FakeUpstream) -> FakeUpstream:
    fake.reset()
    return fake


class Tenant:
    """A tenant of the test's own, calling through a front door."""

    def __init__(self, stack: LocalStack, name: str) -> None:
        self.stack = stack
        self.id = name
        secret = KeyStore(stack.client("dynamodb"), stack.config.table).create(name).secret
        self.headers = {"authorization": f"Bearer {secret}"}

    def post(self, path: str, body: Any, door: str = "stream") -> httpx.Response:
        base = self.stack.stream_url if door == "stream" else self.stack.api_url
        return httpx.post(f"{base}{path}", json=body, headers=self.headers, timeout=60)

    def get(self, path: str, door: str = "stream") -> httpx.Response:
        base = self.stack.stream_url if door == "stream" else self.stack.api_url
        return httpx.get(f"{base}{path}", headers=self.headers, timeout=60)

    def upload(self, filename: str, content_type: str, data: bytes) -> dict[str, Any]:
        body = {
            "filename": filename,
            "content_type": content_type,
            "data": base64.b64encode(data).decode(),
        }
        # The documents API on the worker, through the load balancer the front doors use.
        response = httpx.post(
            f"{self.stack.worker_url}/v1/documents", json=body, headers=self.headers, timeout=60
        )
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    def start(self, agent: str, input: dict[str, Any], **extra: Any) -> dict[str, Any]:
        body = {"kind": "agent", "input": {"agent": agent, "input": input, **extra}}
        response = self.post("/runs", {**body, "background": True})
        assert response.status_code == 202, response.text
        return dict(response.json())

    def wait(self, run_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(f"/runs/{run_id}").json()
            if run["status"] in statuses:
                return dict(run)
            assert run["status"] not in ("failed", "cancelled") or run["status"] in statuses, run
            time.sleep(0.1)
        raise AssertionError(f"run {run_id} did not become {statuses} in {timeout} s")

    def events(self, run_id: str) -> list[dict[str, Any]]:
        response = self.get(f"/runs/{run_id}/events")
        assert response.status_code == 200
        return [
            json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
        ]


def move(document_id: str, folder: str) -> dict[str, str]:
    return {"document_id": document_id, "folder": folder}


def call(call_id: str, name: str, arguments: dict[str, Any]) -> Script:
    text = json.dumps(arguments)
    fragments = [text[: len(text) // 2], text[len(text) // 2 :]]
    return Script(text=[], tool_calls=[ToolCallScript(call_id, name, fragments)], stop="tool_calls")


def tool_replies(fake: FakeUpstream, request: int = -1) -> list[dict[str, Any]]:
    messages = fake.canonical_request(fake.requests[request])["messages"]
    return [json.loads(m.text) for m in messages if m.role == "tool"]


@pytest.mark.parametrize("door", api_and_stream())
def test_the_agents_are_listed_through_both_doors(stack: LocalStack, door: str) -> None:
    tenant = Tenant(stack, f"agents-list-{door}")
    listed = tenant.get("/agents", door=door)
    assert listed.status_code == 200
    agents = {a["name"]: a for a in listed.json()["data"]}
    assert set(agents) == {"document_analyst", "asset_organizer", "docs_chat"}
    assert agents["asset_organizer"]["approval_required"] == ["move_documents"]
    assert agents["document_analyst"]["tools"] == FIVE
    unknown = tenant.post("/runs", {"kind": "agent", "input": {"agent": "teleporter"}})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "input.agent"


def test_document_analyst_streams_its_five_steps_over_a_multipage_pdf(stack: LocalStack) -> None:
    tenant = Tenant(stack, "agents-analyst")
    pdf = tenant.upload("harbour.pdf", "application/pdf", make_pdf(PAGES))
    other = tenant.upload("ferries.txt", "text/plain", b"Ferries berth at the north quay.")
    assert pdf["pages"] == 3
    body = {
        "kind": "agent",
        "input": {"agent": "document_analyst", "input": {"document_id": pdf["id"]}},
        "stream": True,
    }
    with httpx.stream(
        "POST", f"{stack.stream_url}/runs", json=body, headers=tenant.headers, timeout=60
    ) as response:
        assert response.status_code == 200
        events = [
            json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
        ]
    types = [e["type"] for e in events]
    assert types[:2] == ["run.created", "run.started"] and types[-1] == "run.succeeded", events[-3:]
    assert events[0]["data"]["id"] == response.headers["location"].rsplit("/", 1)[1]
    assert [e["data"]["step"] for e in events if e["type"] == "step.started"] == [0, 1, 2, 3, 4]
    assert [e["data"]["name"] for e in events if e["type"] == "tool.called"] == FIVE
    assert [e["data"]["tools"] for e in events if e["type"] == "step.completed"] == [
        [name] for name in FIVE
    ]
    results = [e["data"] for e in events if e["type"] == "tool.result"]
    assert all("output" in r for r in results), results
    result = events[-1]["data"]["result"]
    assert result["agent"] == "document_analyst" and result["outcome"] == "planned"
    extracted = result["results"]["extract_text"]
    assert extracted["pages"] == 3 and all(p.split("\n")[0] in extracted["text"] for p in PAGES)
    assert result["results"]["analyze_themes"]["themes"]
    assert result["results"]["generate_tags"]["tags"]
    assert result["output"] == result["results"]["summarize"]["summary"] != ""
    assert [r["document_id"] for r in result["results"]["suggest_related"]["related"]] == [
        other["id"]
    ]
    assert tenant.events(_run_id(tenant)) == events[1:]  # the run's own events, replayed
    # The run's usage is every model call its tools made, as /v1/usage counts them.
    usage = result["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert result["models"] == ["local/simulator", "local/embedding"]
    counted = (0, 0)
    deadline = time.monotonic() + 15
    while counted != (usage["input_tokens"], usage["output_tokens"]):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)  # usage records reach the table about 100 ms after their call
        totals = tenant.get("/usage").json()["totals"]
        counted = (totals["input_tokens"], totals["output_tokens"])
    assert counted == (usage["input_tokens"], usage["output_tokens"])


def _run_id(tenant: Tenant) -> str:
    return str(tenant.get("/runs?limit=1").json()["data"][0]["id"])


def test_a_tool_that_raises_ends_the_run_with_its_reason(stack: LocalStack) -> None:
    tenant = Tenant(stack, "agents-raises")
    scan = tenant.upload("scan.pdf", "application/pdf", make_pdf(["", ""]))
    run = tenant.start("document_analyst", {"document_id": scan["id"]})
    failed = tenant.wait(run["id"], "failed")
    error = failed["error"]
    assert error["code"] == "tool_error" and error["type"] == "agent_error"
    assert error["message"].startswith("Tool 'analyze_themes' failed at step 1:")
    assert "no text" in error["message"]
    assert [s["calls"][0]["name"] for s in failed["result"]["steps"]] == ["extract_text"]
    assert tenant.events(run["id"])[-1]["type"] == "run.failed"


def test_the_step_limit_ends_the_run_with_its_reason(
    stack: LocalStack, scripts: FakeUpstream
) -> None:
    tenant = Tenant(stack, "agents-limit")
    tenant.upload("notes.txt", "text/plain", b"Fenders are due before winter.")
    scripts.enqueue(*[call(f"c{i}", "search_documents", {"query": "fenders"}) for i in range(5)])
    run = tenant.start("docs_chat", {"message": "What is due?"}, model=AGENT_MODEL, max_steps=3)
    failed = tenant.wait(run["id"], "failed")
    assert failed["error"]["code"] == "step_limit_reached"
    assert "limit of 3 steps" in failed["error"]["message"]
    assert len(failed["result"]["steps"]) == 3 and len(scripts.requests) == 3
    assert failed["progress"]["completed_steps"] == 3
    found = failed["result"]["steps"][0]["calls"][0]["output"]["results"]
    assert found and found[0]["filename"] == "notes.txt"


def test_docs_chat_answers_citing_document_ids_in_a_conversation(
    stack: LocalStack, scripts: FakeUpstream
) -> None:
    tenant = Tenant(stack, "agents-chat")
    fenders = tenant.upload("fenders.txt", "text/plain", b"The north quay needs new fenders.")
    tenant.upload("cake.md", "text/markdown", b"# Cake\n\nFlour, eggs and sugar.")
    scripts.enqueue(
        call("c1", "search_documents", {"query": "quay fenders"}),
        Script(text=[f"The quay needs new fenders [{fenders['id']}] ", "(see also [doc_0000])."]),
    )
    run = tenant.start("docs_chat", {"message": "What does the quay need?"}, model=AGENT_MODEL)
    done = tenant.wait(run["id"], "succeeded")["result"]
    assert done["citations"] == [fenders["id"]]  # an id no tool returned is not a citation
    streamed = [e["data"] for e in tenant.events(run["id"]) if e["type"] == "text.delta"]
    assert "".join(d["content"] for d in streamed) == done["output"]
    assert {d["step"] for d in streamed} == {1}
    searched = tool_replies(scripts)[0]["results"]
    assert searched[0]["document_id"] == fenders["id"] and "fenders" in searched[0]["snippet"]
    conversation = tenant.get(f"/conversations/{done['conversation_id']}")
    assert conversation.status_code == 200
    turn = conversation.json()["messages"]["data"]
    assert [m["role"] for m in turn] == ["user", "assistant"]
    assert "What does the quay need?" in json.dumps(turn[0])
    assert fenders["id"] in json.dumps(turn[1])
    # The next turn reads the conversation's history.
    scripts.enqueue(Script(text=["Before winter."]))
    follow = tenant.start(
        "docs_chat",
        {"message": "By when?", "conversation_id": done["conversation_id"]},
        model=AGENT_MODEL,
    )
    assert tenant.wait(follow["id"], "succeeded")["result"]["output"] == "Before winter."
    sent = scripts.canonical_request(scripts.requests[-1])["messages"]
    assert [m.role for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1].text == "What does the quay need?" and sent[-1].text == "By when?"


def _images(tenant: Tenant) -> list[dict[str, Any]]:
    return [tenant.upload(f"photo-{i}.png", "image/png", png) for i, png in enumerate(PNGS)]


def _keys(stack: LocalStack, tenant: Tenant) -> set[str]:
    listed = stack.client("s3").list_objects_v2(
        Bucket=stack.config.bucket, Prefix=f"tenants/{tenant.id}/documents/"
    )
    return {o["Key"] for o in listed.get("Contents", [])}


def _answer(tenant: Tenant, run_id: str, body: dict[str, Any], door: str = "stream") -> None:
    response = tenant.post(f"/runs/{run_id}/input", body, door=door)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "queued"


def test_asset_organizer_conversation_with_a_change_request_then_approval(
    stack: LocalStack, scripts: FakeUpstream
) -> None:
    tenant = Tenant(stack, "agents-organize")
    cat, dog, beach = _images(tenant)
    before = _keys(stack, tenant)
    first = [move(cat["id"], "animals"), move(dog["id"], "animals"), move(beach["id"], "places")]
    second = [
        move(cat["id"], "animals/cats"),
        move(dog["id"], "animals/dogs"),
        move(beach["id"], "places"),
    ]
    scripts.enqueue(
        call("p1", "move_documents", {"moves": first}),
        call("p2", "move_documents", {"moves": second}),
        Script(text=["Moved 3 images into animals/cats, animals/dogs and places."]),
    )
    run = tenant.start("asset_organizer", {}, model=AGENT_MODEL)

    asked = tenant.wait(run["id"], "awaiting_input")
    question = asked["pending_input"]
    assert question["type"] == "question" and "3 images" in question["prompt"]
    assert scripts.requests == []  # the images were classified by the tool, not the agent model
    wrong = tenant.post(f"/runs/{run['id']}/input", {"approve": True})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "approve"
    _answer(tenant, run["id"], {"input": "By subject, please."}, door="stream")

    proposal = tenant.wait(run["id"], "awaiting_input")["pending_input"]
    assert proposal["type"] == "approval" and proposal["detail"]["arguments"]["moves"] == first
    assert "animals/: photo-0.png, photo-1.png" in proposal["prompt"]
    told = tool_replies(scripts)
    assert told[-1] == {"answer": "By subject, please."}
    assert len([r for r in told if "labels" in r]) == 3  # each image's classification
    assert _keys(stack, tenant) == before  # nothing moved while waiting
    _answer(tenant, run["id"], {"approve": False, "feedback": "Split the animals: cats, dogs."})

    revised = tenant.wait(run["id"], "awaiting_input")["pending_input"]
    assert revised["detail"]["arguments"]["moves"] == second
    assert "Split the animals" in tool_replies(scripts)[-1]["error"]["message"]
    assert _keys(stack, tenant) == before
    _answer(tenant, run["id"], {"approve": True})

    done = tenant.wait(run["id"], "succeeded")
    result = done["result"]
    assert result["outcome"] == "answered" and result["proposals"] == 2
    assert result["output"].startswith("Moved 3 images")
    assert {(m["document_id"], m["to_folder"]) for m in result["moved"]} == {
        (m["document_id"], m["folder"]) for m in second
    }
    after = _keys(stack, tenant)
    assert after != before
    for document, folder in ((cat, "animals/cats"), (dog, "animals/dogs"), (beach, "places")):
        prefix = f"tenants/{tenant.id}/documents/{folder}/"
        assert any(k.startswith(prefix) and document["id"] in k for k in after), (folder, after)
        stored = httpx.get(
            f"{stack.worker_url}/v1/documents/{document['id']}", headers=tenant.headers
        ).json()
        assert stored["folder"] == folder
    assert not before & after  # each original object was deleted after its copy
    late = tenant.post(f"/runs/{run['id']}/input", {"approve": True})
    assert late.status_code == 409 and late.json()["error"]["code"] == "run_not_awaiting_input"
    events = tenant.events(run["id"])
    assert [e["type"] for e in events].count("awaiting_input") == 3
    assert [e["data"]["resumed"] for e in events if e["type"] == "run.started"] == [
        False,
        True,
        True,
        True,
    ]


def test_asset_organizer_rejected_approval_moves_nothing(
    stack: LocalStack, scripts: FakeUpstream
) -> None:
    tenant = Tenant(stack, "agents-reject")
    images = _images(tenant)
    before = _keys(stack, tenant)
    scripts.enqueue(
        call("p1", "move_documents", {"moves": [move(i["id"], "all") for i in images]}),
        Script(text=["unused"]),
    )
    run = tenant.start("asset_organizer", {"max_images": 10}, model=AGENT_MODEL)
    tenant.wait(run["id"], "awaiting_input")
    _answer(tenant, run["id"], {"input": "Everything in one folder."})
    assert tenant.wait(run["id"], "awaiting_input")["pending_input"]["type"] == "approval"
    _answer(tenant, run["id"], {"approve": False})
    done = tenant.wait(run["id"], "succeeded")
    assert done["result"]["outcome"] == "rejected" and done["result"]["moved"] == []
    assert "nothing was moved" in done["result"]["output"]
    assert len(scripts.requests) == 1  # the model was not asked again
    assert _keys(stack, tenant) == before
    for image in images:
        stored = httpx.get(
            f"{stack.worker_url}/v1/documents/{image['id']}", headers=tenant.headers
        ).json()
        assert stored["folder"] == ""


# --- the same agents with no model but the simulator (what `make dev` runs) -------------
SIMULATOR_LABEL = "[local simulator, not a model]"


def test_docs_chat_on_the_simulator_searches_reads_and_answers_citing_ids(
    stack: LocalStack,
) -> None:
    tenant = Tenant(stack, "offline-chat")
    fenders = tenant.upload("fenders.txt", "text/plain", b"The north quay needs new fenders.")
    tenant.upload("cake.md", "text/markdown", b"# Cake\n\nFlour, eggs and sugar.")
    run = tenant.start("docs_chat", {"message": "What does the north quay need?"})
    done = tenant.wait(run["id"], "succeeded")["result"]
    calls = [c for step in done["steps"] for c in step["calls"]]
    assert [c["name"] for c in calls] == ["search_documents", "extract_text"]
    assert json.loads(calls[0]["arguments"]) == {"query": "What does the north quay need?"}
    # It reads the best match the search returned, and cites what the tools gave it.
    assert json.loads(calls[1]["arguments"]) == {"document_id": fenders["id"]}
    assert done["output"].startswith(SIMULATOR_LABEL)
    assert f"fenders.txt [{fenders['id']}]" in done["output"]
    assert done["citations"][0] == fenders["id"]
    turn = tenant.get(f"/conversations/{done['conversation_id']}").json()["messages"]["data"]
    assert [m["role"] for m in turn] == ["user", "assistant"]
    assert fenders["id"] in json.dumps(turn[1])
    listed = tenant.get("/runs?limit=1").json()["data"][0]
    assert listed["id"] == run["id"]


def test_asset_organizer_on_the_simulator_asks_proposes_revises_and_moves(
    stack: LocalStack,
) -> None:
    tenant = Tenant(stack, "offline-organize")
    images = _images(tenant)
    before = _keys(stack, tenant)
    run = tenant.start("asset_organizer", {})
    question = tenant.wait(run["id"], "awaiting_input")["pending_input"]
    assert question["type"] == "question"
    _answer(tenant, run["id"], {"input": "By subject, please."})

    proposal = tenant.wait(run["id"], "awaiting_input")["pending_input"]
    assert proposal["type"] == "approval" and proposal["detail"]["tool"] == "move_documents"
    moves = proposal["detail"]["arguments"]["moves"]
    assert sorted(m["document_id"] for m in moves) == sorted(i["id"] for i in images)
    assert {m["folder"].split("/")[0] for m in moves} == {"subject"}  # the person's criterion
    assert _keys(stack, tenant) == before  # nothing moves before the approval
    _answer(tenant, run["id"], {"approve": False, "feedback": "Use an archive folder instead."})

    revised = tenant.wait(run["id"], "awaiting_input")["pending_input"]
    folders = {m["document_id"]: m["folder"] for m in revised["detail"]["arguments"]["moves"]}
    assert {f.split("/")[0] for f in folders.values()} == {"archive"}  # the change asked for
    assert _keys(stack, tenant) == before
    _answer(tenant, run["id"], {"approve": True})

    done = tenant.wait(run["id"], "succeeded")["result"]
    assert done["outcome"] == "answered" and done["proposals"] == 2
    assert done["output"].startswith(SIMULATOR_LABEL) and "moved to archive/" in done["output"]
    assert {m["document_id"]: m["to_folder"] for m in done["moved"]} == folders
    after = _keys(stack, tenant)
    assert not before & after  # every object was copied to its folder, then deleted
    for image in images:
        folder = folders[image["id"]]
        prefix = f"tenants/{tenant.id}/documents/{folder}/"
        assert any(k.startswith(prefix) and image["id"] in k for k in after), (folder, after)


def test_a_worker_killed_between_steps_resumes_without_redoing_finished_steps(
    stack: LocalStack,
) -> None:
    """Last in the module: it leaves one worker running."""
    tenant = Tenant(stack, "agents-crash")
    pdf = tenant.upload("harbour.pdf", "application/pdf", make_pdf(PAGES))
    run = tenant.start("document_analyst", {"document_id": pdf["id"]})
    store = RunStore(stack.client("dynamodb"), stack.config.table)
    deadline = time.monotonic() + 30
    record = None
    while time.monotonic() < deadline:
        record = store.get(tenant.id, run["id"])
        if record is not None and record.progress.get("completed_steps", 0) >= 2:
            break
        time.sleep(0.02)
    assert record is not None and record.owner is not None
    assert record.progress["completed_steps"] < 5, "the run ended before the kill"
    finished_before = record.progress["completed_steps"]
    victim = int(record.owner.rsplit("-", 1)[1])
    stack.worker_process(victim).send_signal(signal.SIGKILL)

    done = tenant.wait(run["id"], "succeeded", timeout=60)
    assert done["attempts"] == 2
    events = tenant.events(run["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    completed = [e["data"]["step"] for e in events if e["type"] == "step.completed"]
    assert completed == [0, 1, 2, 3, 4]  # each step completed once
    called = [e["data"]["name"] for e in events if e["type"] == "tool.called"]
    for name in FIVE[:finished_before]:
        assert called.count(name) == 1, (name, called)  # finished steps were not redone
    starts = [e for e in events if e["type"] == "run.started"]
    assert [s["data"]["resumed"] for s in starts] == [False, True]
    resumed_at = events.index(starts[1])
    restarted = [e["data"]["step"] for e in events[resumed_at:] if e["type"] == "step.started"]
    assert restarted[0] >= finished_before and restarted == list(range(restarted[0], 5))
    assert sorted(done["result"]["results"]) == sorted(FIVE)

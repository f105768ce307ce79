"""Every registered tool through `POST /v1/tools/{name}` on the local stack, against the
simulator: through the API port (once the emulator routes by the table) and the stream front door, with the
tenant's documents in moto's S3 and DynamoDB; bad input and tool errors included."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from devstack.stack import LocalStack
from services.documents.store import DocumentSettings, DocumentStore
from services.tenancy.keys import KeyStore
from services.tools import registry
from tests.integration.doors import api_and_stream
from tests.pdf import make_pdf

TENANT = "tools-it"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
PAGES = [
    "Harbour survey 2026\nThe north quay needs new fenders before winter.",
    "Dredging the channel to nine metres lets the larger ferries berth at low tide.",
    "Budget: the fenders cost 1.2 million; dredging costs 3.4 million.",
]


@pytest.fixture(scope="module")
def key(stack: LocalStack) -> str:
    """An API key of a tenant of this module's own, so other tests' documents stay out."""
    return str(KeyStore(stack.client("dynamodb"), stack.config.table).create(TENANT).secret)


@pytest.fixture(scope="module")
def docs(stack: LocalStack, key: str) -> dict[str, str]:
    """The tenant's documents, stored as an upload stores them (text extracted at once)."""
    store = DocumentStore(
        stack.client("dynamodb"),
        stack.client("s3"),
        stack.config.table,
        DocumentSettings(bucket=stack.config.bucket),
    )

    async def put() -> dict[str, str]:
        files = {
            "pdf": ("harbour.pdf", "application/pdf", make_pdf(PAGES)),
            "text": ("ferries.txt", "text/plain", b"Ferry timetables for the winter season."),
            "markdown": ("quay.md", "text/markdown", b"# Quay\n\nFenders and bollards."),
            "image": ("quay.png", "image/png", PNG),
            "scan": ("scan.pdf", "application/pdf", make_pdf([""])),
            "huge": ("huge.txt", "text/plain", b"harbour " * 30_000),
            "other": ("theirs.txt", "text/plain", b"Another tenant's notes."),
        }
        ids = {}
        for role, (name, content_type, data) in files.items():
            tenant = "someone-else" if role == "other" else TENANT
            ids[role] = (await store.put(tenant, name, content_type, data)).id
        return ids

    return asyncio.run(put())


@pytest.fixture(scope="module", params=api_and_stream())
def client(request: pytest.FixtureRequest, stack: LocalStack, key: str) -> Iterator[httpx.Client]:
    base = stack.api_url if request.param == "api" else stack.stream_url
    with httpx.Client(
        base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=60
    ) as http:
        yield http


EXAMPLES: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
    "summarize": lambda d: {"document_id": d["pdf"], "max_words": 40},
    "extract_text": lambda d: {"document_id": d["pdf"]},
    "analyze_themes": lambda d: {"document_id": d["pdf"], "max_themes": 2},
    "generate_tags": lambda d: {"text": "Fenders, bollards and dredging at the quay."},
    "classify_image": lambda d: {"document_id": d["image"], "labels": ["harbour", "ship"]},
    "generate_alt_text": lambda d: {"image_url": PNG_URL},
    "suggest_related": lambda d: {
        "document_id": d["markdown"],
        "kinds": ["pdf", "text"],
        "min_score": -1,
    },
    "search_documents": lambda d: {"query": "ferry timetables"},
    "generate_content": lambda d: {"prompt": "A notice to ferry passengers", "kind": "email"},
    "build_report": lambda d: {
        "title": "Harbour works",
        "sections": [
            {"heading": "Survey", "document_id": d["pdf"]},
            {"heading": "Next steps", "text": "Tender the fender contract in March."},
        ],
        "summary_words": 50,
    },
}


def test_the_tools_are_listed_with_their_schemas(client: httpx.Client) -> None:
    listed = client.get("/tools")
    assert listed.status_code == 200, listed.text
    tools = {t["name"]: t for t in listed.json()["data"]}
    assert sorted(tools) == sorted(registry.tools())
    assert tools["summarize"]["input_schema"] == registry.get("summarize").Input.model_json_schema()
    one = client.get("/tools/build_report")
    assert one.status_code == 200 and one.json()["route"] == "smart"
    missing = client.get("/tools/nope")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "tool_not_found")


@pytest.mark.parametrize("name", sorted(registry.tools()))
def test_every_tool_runs_through_the_front_door(
    name: str, client: httpx.Client, docs: dict[str, str]
) -> None:
    assert name in EXAMPLES, f"add an example input for the new tool {name!r} to EXAMPLES"
    answer = client.post(f"/tools/{name}", json={"input": EXAMPLES[name](docs)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["object"], body["tool"]) == ("tool.result", name)
    tool = registry.get(name)
    tool.Output.model_validate(body["output"])
    # `model` is the model that answered (here the simulator, the routes' fallback).
    if tool.uses_model:
        assert body["model"] == "local/simulator" and body["usage"]["total_tokens"] > 0
    else:  # no chat model; embeddings, unless every vector was already stored
        assert body["model"] in (None, "local/embedding")
        assert (body["usage"] is None) == (body["model"] is None)
    output = body["output"]
    if name == "extract_text":
        assert output["pages"] == 3 and "nine metres" in output["text"]
    elif name == "suggest_related":
        ranked = [r["document_id"] for r in output["related"]]
        assert set(ranked) == {docs["pdf"], docs["text"], docs["scan"], docs["huge"]}
        assert docs["other"] not in ranked
    elif name == "build_report":
        assert f"Source: `{docs['pdf']}`" in output["markdown"]
        assert "nine metres" in output["markdown"]


@pytest.mark.parametrize("name", sorted(registry.tools()))
def test_bad_input_names_the_field(name: str, client: httpx.Client) -> None:
    answer = client.post(f"/tools/{name}", json={"input": {"colour": "blue"}})
    error = answer.json()["error"]
    assert answer.status_code == 400, answer.text
    assert error["code"] == "invalid_tool_input" and error["param"].startswith("input.")


def test_a_request_without_input_or_with_extras_is_400(client: httpx.Client) -> None:
    def error(body: Any) -> tuple[int, str | None]:
        answer = client.post("/tools/summarize", json=body)
        return answer.status_code, answer.json()["error"]["param"]

    assert error({}) == (400, "input")
    assert error({"input": {"text": "x"}, "stream": True}) == (400, "stream")
    assert error({"input": {"text": "x"}, "model": "no-such-model"}) == (404, "model")
    assert client.post("/tools/summarize", content=b"[1]").status_code == 400


def test_tool_errors_are_clear(client: httpx.Client, docs: dict[str, str]) -> None:
    def run(name: str, raw: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        answer = client.post(f"/tools/{name}", json={"input": raw})
        return answer.status_code, answer.json()["error"]

    # A PDF with no text layer: the work cannot be done (422), and the message says why.
    status, error = run("summarize", {"document_id": docs["scan"]})
    assert (status, error["code"], error["type"]) == (422, "tool_failed", "tool_error")
    assert "no text" in error["message"] and error["param"] == "input.document_id"
    # More text than the tool's named limit.
    status, error = run("analyze_themes", {"document_id": docs["huge"]})
    assert status == 422 and "max_input_chars" in error["message"]
    # An image given to a text tool, and a text document to an image tool.
    status, error = run("summarize", {"document_id": docs["image"]})
    assert (status, error["code"]) == (400, "unsupported_document_kind")
    status, error = run("generate_alt_text", {"document_id": docs["text"]})
    assert (status, error["code"]) == (400, "unsupported_document_kind")
    # Another tenant's document does not exist for this one.
    status, error = run("extract_text", {"document_id": docs["other"]})
    assert status == 404

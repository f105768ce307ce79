"""Every registered tool against the local simulator and a moto-backed document store; bad
input, tool failures and timeouts; the schemas tools export; the worker's tools routes;
and discovery: adding a tool is adding one file."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from containers.worker.routing import table_routes
from containers.worker.tools_api import tool_endpoints
from services.documents.embeddings import Embeddings
from services.documents.store import DocumentStore
from services.errors import APIError
from services.models.catalogue import Catalogue, CatalogueConfig
from services.providers.base import (
    Completion,
    CompletionRequest,
    Provider,
    StopReason,
    StreamEvent,
    Usage,
)
from services.providers.local import LocalProvider, LocalSettings
from services.runs.service import RunService, RunSettings
from services.runs.store import RunStore
from services.runs.sync import SyncCalls
from services.tenancy.auth import Authenticator
from services.tools import registry
from services.tools.base import Tool, ToolContext, ToolLimits, inline_refs
from services.web.asgi import install_error_handlers
from tests.fakes.keys import StaticKeys, bearer
from tests.fakes.serialized import Serialized, moto_documents
from tests.pdf import make_pdf

TABLE = "switchboard-test"
BUCKET = "switchboard-test-bucket"
TENANT = "acme"
KEY = "sb-test-key-of-acme"
HEADERS = bearer(KEY)
# A real 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
ARTICLE = (
    "Tidal energy converts the rise and fall of ocean tides into electricity. Turbines "
    "anchored to the seabed spin as water flows past them, much as wind turbines do in air. "
    "Tides are predictable decades ahead, which makes tidal power steadier than wind or "
    "solar, but the turbines are expensive to build and maintain in salt water."
)

MARKDOWN_WORDS = {"solar", "panels", "turn", "light", "into", "power"}

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Scripted(Provider):
    """Answers each `complete` with the next of `answers` (text and stop reason)."""

    name = "scripted"

    def __init__(self, *answers: tuple[str, StopReason]) -> None:
        self.answers = list(answers)
        self.requests: list[CompletionRequest] = []

    def models(self) -> list[str]:
        return ["m"]

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        text, stop = self.answers.pop(0)
        return Completion(text, stop, Usage(10, 5))

    def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError("tools call complete")


def catalogue(provider: Provider | None = None) -> Catalogue:
    providers: dict[str, Provider] = {"local": LocalProvider()}
    if provider is not None:
        providers[provider.name] = provider
    return Catalogue(providers, CatalogueConfig.load())


@pytest.fixture
def store() -> Iterator[DocumentStore]:
    with moto_documents(TABLE, BUCKET) as documents:
        yield documents


@pytest.fixture
def docs(store: DocumentStore) -> dict[str, str]:
    """The tenant's documents, by role: ids as the tools take them."""

    async def upload() -> dict[str, str]:
        report = make_pdf(["Tidal energy report", ARTICLE[:150], ARTICLE[150:]])
        stored = {
            "pdf": await store.put(TENANT, "tidal.pdf", "application/pdf", report),
            "text": await store.put(TENANT, "wind.txt", "text/plain", b"Wind turbines " * 40),
            "markdown": await store.put(
                TENANT, "solar.md", "text/markdown", b"# Solar\n\nPanels turn light into power."
            ),
            "image": await store.put(TENANT, "pixel.png", "image/png", PNG),
            "other_tenant": await store.put("globex", "secret.txt", "text/plain", b"not yours"),
        }
        return {role: document.id for role, document in stored.items()}

    return run(upload())


def embeddings(store: DocumentStore) -> Embeddings:
    return Embeddings(catalogue(), store)


def context(
    store: DocumentStore, tool: Tool, provider: Provider | None = None, **kw: Any
) -> ToolContext:
    route = kw.pop("route", None) or ("scripted/m" if provider is not None else tool.route)
    return ToolContext(
        tenant_id=TENANT,
        key_id="key_1",
        catalogue=catalogue(provider),
        route=route,
        documents=store,
        embeddings=embeddings(store),
        **kw,
    )


# One example input per tool; a new tool file fails `test_every_tool_runs...` until it
# has one here.
EXAMPLES: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
    "summarize": lambda d: {"document_id": d["pdf"], "style": "bullets", "max_words": 60},
    "extract_text": lambda d: {"document_id": d["pdf"]},
    "analyze_themes": lambda d: {"text": ARTICLE, "max_themes": 3},
    "generate_tags": lambda d: {"document_id": d["markdown"], "max_tags": 5},
    "classify_image": lambda d: {"document_id": d["image"], "labels": ["pixel", "landscape"]},
    "generate_alt_text": lambda d: {"image_url": PNG_URL, "max_chars": 120},
    "suggest_related": lambda d: {"document_id": d["pdf"], "top_k": 2},
    "search_documents": lambda d: {"query": "ocean tides", "top_k": 2},
    "generate_content": lambda d: {
        "prompt": "A short post about tidal power",
        "kind": "social_post",
        "document_ids": [d["pdf"]],
    },
    "build_report": lambda d: {
        "title": "Renewables",
        "sections": [
            {"heading": "Tidal", "document_id": d["pdf"]},
            {"heading": "Notes", "text": "Wind and solar are cheaper to build."},
        ],
    },
}


@pytest.mark.parametrize("name", sorted(registry.tools()))
def test_every_tool_runs_against_the_simulator(
    name: str, store: DocumentStore, docs: dict[str, str]
) -> None:
    tool = registry.get(name)
    assert name in EXAMPLES, f"add an example input for the new tool {name!r} to EXAMPLES"
    ctx = context(store, tool)
    output = run(tool.invoke(ctx, EXAMPLES[name](docs)))
    tool.Output.model_validate(output)
    assert json.loads(json.dumps(output)) == output  # what the API sends
    assert ctx.model_calls == (1 if tool.uses_model else 0)
    # Each tool's output reflects its input, not a canned answer.
    if name == "extract_text":
        assert output["kind"] == "pdf" and output["pages"] == 3
        assert "rise and fall of ocean tides" in output["text"]
    elif name == "summarize":
        assert output["style"] == "bullets" and "local simulator" in output["summary"]
    elif name == "analyze_themes":
        assert 1 <= len(output["themes"]) <= 3
        assert output["themes"][0]["relevance"] >= output["themes"][-1]["relevance"]
    elif name == "generate_tags":
        assert output["tags"] and set(output["tags"]) <= MARKDOWN_WORDS
    elif name == "classify_image":
        assert {label["label"] for label in output["labels"]} <= {"pixel", "landscape"}
    elif name == "generate_alt_text":
        assert len(output["alt_text"]) <= 120
    elif name == "suggest_related":
        assert output["compared"] == 3  # the tenant's other documents, not another's
        assert docs["pdf"] not in {r["document_id"] for r in output["related"]}
        scores = [r["score"] for r in output["related"]]
        assert len(scores) == 2 and scores == sorted(scores, reverse=True)
    elif name == "search_documents":
        assert output["compared"] == 3 and len(output["results"]) == 2
    elif name == "generate_content":
        assert output["kind"] == "social_post" and output["word_count"] > 0
    elif name == "build_report":
        markdown = output["markdown"]
        assert markdown.startswith("# Renewables\n\n## Summary\n\n")
        assert "## Tidal" in markdown and f"Source: `{docs['pdf']}`" in markdown
        assert "> " in markdown and output["sources"] == [docs["pdf"]]


@pytest.mark.parametrize("name", sorted(registry.tools()))
def test_bad_input_is_400_naming_the_field(name: str, store: DocumentStore) -> None:
    tool = registry.get(name)
    ctx = context(store, tool)
    with pytest.raises(APIError) as unknown:
        run(tool.invoke(ctx, {"colour": "blue"}))
    with pytest.raises(APIError) as empty:
        run(tool.invoke(ctx, {}))
    for error in (unknown.value, empty.value):
        assert (error.status, error.code) == (400, "invalid_tool_input")
        assert error.param is not None and error.param.startswith("input.")
        assert f"{error.param.removeprefix('input.')}: " in error.message
    assert ctx.model_calls == 0


def test_the_field_named_is_the_one_at_fault(store: DocumentStore) -> None:
    cases = [
        ("summarize", {"text": "x", "colour": "blue"}, "input.colour"),
        ("summarize", {}, "input.text"),
        ("summarize", {"text": "x", "document_id": "doc_" + "0" * 24}, "input.document_id"),
        ("summarize", {"text": "x", "max_words": 5}, "input.max_words"),
        ("classify_image", {"image_url": "ftp://x"}, "input.image_url"),
        ("classify_image", {"image_url": "data:image/png;base64,!!"}, "input.image_url"),
        ("generate_content", {"prompt": "x", "document_ids": ["nope"]}, "input.document_ids.0"),
        ("build_report", {"title": "t", "sections": [{"heading": "h"}]}, "input.sections.0.text"),
        ("extract_text", {"document_id": "doc_x"}, "input.document_id"),
    ]
    for name, raw, param in cases:
        tool = registry.get(name)
        with pytest.raises(APIError) as caught:
            run(tool.invoke(context(store, tool), raw))
        assert (caught.value.status, caught.value.param) == (400, param), (name, raw)


def test_documents_are_the_callers_and_of_the_right_kind(
    store: DocumentStore, docs: dict[str, str]
) -> None:
    summarize, classify = registry.get("summarize"), registry.get("classify_image")
    with pytest.raises(APIError) as foreign:
        run(summarize.invoke(context(store, summarize), {"document_id": docs["other_tenant"]}))
    with pytest.raises(APIError) as image:
        run(summarize.invoke(context(store, summarize), {"document_id": docs["image"]}))
    with pytest.raises(APIError) as text:
        run(classify.invoke(context(store, classify), {"document_id": docs["text"]}))
    assert foreign.value.status == 404
    assert (image.value.status, image.value.code) == (400, "unsupported_document_kind")
    assert image.value.param == text.value.param == "input.document_id"
    assert (text.value.status, text.value.code) == (400, "unsupported_document_kind")


@pytest.mark.parametrize(
    ("answer", "stop", "expected"),
    [
        ("I'd tag this with solar and power.", "stop", "not the JSON object"),
        ('{"tags": ["solar",]}', "stop", "not valid JSON"),
        ('{"labels": ["solar"]}', "stop", "does not match the expected shape: tags"),
        ('{"tags": ["solar", "po', "length", "cut off"),
        ('{"tags": ["' + "x" * 60 + '"]}', "stop", "tags.0: String should have at most 40"),
        ('{"tags": ["  "]}', "stop", "only blank tags"),
    ],
)
def test_an_unusable_model_answer_is_422_tool_failed(
    store: DocumentStore, answer: str, stop: StopReason, expected: str
) -> None:
    tool = registry.get("generate_tags")
    provider = Scripted((answer, stop))
    with pytest.raises(APIError) as caught:
        run(tool.invoke(context(store, tool, provider), {"text": ARTICLE}))
    assert (caught.value.status, caught.value.code) == (422, "tool_failed")
    assert expected in caught.value.message
    assert len(provider.requests) == 1


def test_a_json_answer_in_a_code_fence_is_parsed_and_normalized(store: DocumentStore) -> None:
    tool = registry.get("generate_tags")
    answer = 'Here you go:\n```json\n{"tags": ["Tidal  Power", "tidal power", "Energy"]}\n```'
    provider = Scripted((answer, "stop"))
    ctx = context(store, tool, provider)
    output = run(tool.invoke(ctx, {"text": ARTICLE, "vocabulary": ["energy"]}))
    assert output["tags"] == ["tidal power", "energy"]
    system = provider.requests[0].messages[0].text
    assert (
        "JSON Schema:" in system and "Prefer these existing tags where they fit: energy" in system
    )
    assert provider.requests[0].max_tokens == tool.limits.max_output_tokens
    assert (ctx.usage.input_tokens, ctx.usage.output_tokens) == (10, 5)


def test_classify_image_refuses_labels_outside_the_candidates(store: DocumentStore) -> None:
    tool = registry.get("classify_image")
    provider = Scripted(('{"labels": [{"label": "cat", "confidence": 0.9}]}', "stop"))
    with pytest.raises(APIError) as caught:
        run(tool.invoke(context(store, tool, provider), {"image_url": PNG_URL, "labels": ["dog"]}))
    assert caught.value.status == 422 and "not among the candidates: cat" in caught.value.message
    request = provider.requests[0]
    assert request.messages[1].content[0].url == PNG_URL  # type: ignore[union-attr]


def test_a_stored_image_reaches_the_model_as_a_data_url(
    store: DocumentStore, docs: dict[str, str]
) -> None:
    tool = registry.get("generate_alt_text")
    provider = Scripted(("A single grey pixel on a white page, seen up close.", "stop"))
    output = run(
        tool.invoke(context(store, tool, provider), {"document_id": docs["image"], "max_chars": 30})
    )
    assert output == {"alt_text": "A single grey pixel on a…", "shortened": True}
    assert provider.requests[0].messages[1].content[0].url == PNG_URL  # type: ignore[union-attr]


def test_a_tool_past_its_time_limit_is_504(store: DocumentStore) -> None:
    class Hasty(type(registry.get("summarize"))):  # type: ignore[misc]
        limits = ToolLimits(timeout_seconds=0.05)

    slow = Catalogue(
        {"local": LocalProvider(LocalSettings(first_token_ms=2000))}, CatalogueConfig.load()
    )
    ctx = ToolContext(TENANT, "key_1", slow, "fast", documents=store)
    with pytest.raises(APIError) as caught:
        run(Hasty().invoke(ctx, {"text": ARTICLE}))
    assert (caught.value.status, caught.value.code) == (504, "tool_timeout")


@pytest.mark.parametrize("name", sorted(registry.tools()))
def test_each_tool_exports_schemas_providers_accept(name: str) -> None:
    tool = registry.get(name)
    public = tool.public()
    assert public["object"] == "tool" and public["description"]
    assert public["input_schema"]["type"] == public["output_schema"]["type"] == "object"
    assert public["route"] == (tool.route if tool.uses_model else None)
    assert set(public["limits"]) >= {"max_input_chars", "max_output_tokens", "timeout_seconds"}
    definition = tool.definition()
    assert definition.name == name and definition.description == tool.description
    parameters = definition.parameters
    assert parameters["type"] == "object" and parameters["properties"]
    text = json.dumps(parameters)
    assert "$ref" not in text and "$defs" not in text


def test_inline_refs_resolves_nested_definitions() -> None:
    schema = registry.get("build_report").Input.model_json_schema()
    assert "$defs" in schema  # pydantic refers to the section model...
    inlined = inline_refs(schema)
    section = inlined["properties"]["sections"]["items"]
    assert section["properties"]["heading"]["maxLength"] == 200  # ...inlined here
    with pytest.raises(ValueError, match="recursive"):
        inline_refs(
            {"$defs": {"N": {"properties": {"n": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"}
        )


def test_the_simulator_answers_a_json_schema_with_an_instance_of_it() -> None:
    from services.providers.base import Message, TextPart

    schema = registry.get("analyze_themes").Output.model_json_schema()
    request = CompletionRequest(
        "simulator",
        [
            Message("system", [TextPart("Reply matching this JSON Schema: " + json.dumps(schema))]),
            Message("user", [TextPart("Oceans, tides and turbines.")]),
        ],
    )
    first = run(LocalProvider().complete(request)).text
    assert first == run(LocalProvider().complete(request)).text  # deterministic
    registry.get("analyze_themes").Output.model_validate_json(first)
    assert "oceans" in first and "[local simulator]" in first


def test_adding_a_tool_is_adding_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import services.tools as package

    (tmp_path / "shout.py").write_text(
        textwrap.dedent(
            """
            from pydantic import BaseModel
            from services.tools.base import Tool

            class In(BaseModel):
                text: str

            class Out(BaseModel):
                text: str

            class Shout(Tool):
                name = "shout"
                description = "Upper-case a text."
                Input = In
                Output = Out
                uses_model = False

                async def run(self, ctx, input):
                    return Out(text=input.text.upper())

            TOOL = Shout()
            """
        )
    )
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path)])
    registry.tools.cache_clear()
    try:
        assert "shout" in registry.tools()
        ctx = ToolContext(TENANT, "key_1", None, "fast")
        assert run(registry.get("shout").invoke(ctx, {"text": "hi"})) == {"text": "HI"}
    finally:
        monkeypatch.undo()
        registry.tools.cache_clear()
        sys.modules.pop("services.tools.shout", None)
    assert "shout" not in registry.tools()


# -- the worker's routes -------------------------------------------------------------------


def authenticator() -> Authenticator:
    return Authenticator(StaticKeys({KEY: (TENANT, "key_1")}))  # type: ignore[arg-type]


@pytest.fixture
def api(store: DocumentStore) -> TestClient:
    endpoints, _ = tool_endpoints(
        authenticator(),
        catalogue(Scripted(('{"tags": ["tides"]}', "stop"))),
        64 * 1024,
        SyncCalls(None, 240.0),
        documents=lambda: store,
        embeddings=lambda: embeddings(store),
    )
    app = Starlette(routes=table_routes(endpoints))
    install_error_handlers(app)
    return TestClient(app, raise_server_exceptions=False)


def test_get_tools_lists_every_tool_with_its_schemas(api: TestClient) -> None:
    listed = api.get("/v1/tools", headers=HEADERS)
    assert listed.status_code == 200
    data = listed.json()["data"]
    assert [t["name"] for t in data] == sorted(registry.tools())
    assert all(t["input_schema"]["properties"] for t in data)
    one = api.get("/v1/tools/summarize", headers=HEADERS).json()
    assert one["route"] == "fast" and one["limits"]["max_input_chars"] == 200_000
    assert api.get("/v1/tools", headers={}).status_code == 401
    missing = api.get("/v1/tools/nope", headers=HEADERS)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "tool_not_found")


def test_post_a_tool_answers_its_output_and_usage(api: TestClient) -> None:
    answer = api.post("/v1/tools/summarize", headers=HEADERS, json={"input": {"text": ARTICLE}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["object"], body["tool"]) == ("tool.result", "summarize")
    # The model that answered (the route's simulator fallback here), and the route asked for.
    assert (body["model"], body["models"]) == ("local/simulator", ["local/simulator"])
    assert answer.headers["x-switchboard-route"] == "fast"
    assert "local simulator" in body["output"]["summary"]
    assert body["usage"]["completion_tokens"] > 0
    # The caller may name another model or route.
    scripted = api.post(
        "/v1/tools/generate_tags",
        headers=HEADERS,
        json={"input": {"text": ARTICLE}, "model": "scripted/m"},
    ).json()
    assert scripted["output"]["tags"] == ["tides"] and scripted["model"] == "scripted/m"
    assert scripted["usage"]["prompt_tokens"] == 10


def test_post_a_tool_refuses_what_it_cannot_use(api: TestClient, docs: dict[str, str]) -> None:
    def error(path: str, body: Any) -> tuple[int, str | None, str | None]:
        answer = api.post(path, headers=HEADERS, json=body)
        e = answer.json()["error"]
        return answer.status_code, e["param"], e["code"]

    assert error("/v1/tools/nope", {"input": {}}) == (404, None, "tool_not_found")
    assert error("/v1/tools/summarize", {"text": "x"}) == (400, "text", "unknown_parameter")
    assert error("/v1/tools/summarize", {}) == (400, "input", "missing_required_parameter")
    assert error("/v1/tools/summarize", {"input": "x"}) == (400, "input", "invalid_type")
    assert error("/v1/tools/summarize", {"input": {"txt": "x"}})[:2] == (400, "input.txt")
    assert error("/v1/tools/summarize", {"input": {"text": "x"}, "model": "nope"}) == (
        404, "model", "model_not_found"
    )  # fmt: skip
    assert error("/v1/tools/extract_text", {"input": {"document_id": docs["pdf"]}, "model": "fast"}) == (
        400, "model", "unsupported_parameter"
    )  # fmt: skip


def test_a_tool_past_the_sync_deadline_goes_on_as_a_run(store: DocumentStore) -> None:
    import boto3

    sqs = Serialized(boto3.client("sqs", region_name="us-east-1"))
    queue = sqs.create_queue(QueueName="runs")["QueueUrl"]
    slow = Catalogue(
        {"local": LocalProvider(LocalSettings(first_token_ms=600))}, CatalogueConfig.load()
    )
    runs = RunService(
        RunStore(store._dynamodb_client, TABLE),
        sqs,
        slow,
        RunSettings(queue_url=queue, dlq_url=queue, worker_id="w", advertise_url=None),
    )
    endpoints, kind = tool_endpoints(
        authenticator(),
        slow,
        4096,
        SyncCalls(runs, 0.1),
        documents=lambda: store,
        embeddings=lambda: None,
    )
    runs.register(kind)
    app = Starlette(routes=table_routes(endpoints))
    install_error_handlers(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        late = client.post(
            "/v1/tools/summarize", headers=HEADERS, json={"input": {"text": ARTICLE}}
        )
        preferred = client.post(
            "/v1/tools/summarize",
            headers={**HEADERS, "prefer": "respond-async"},
            json={"input": {"text": ARTICLE}},
        )
        assert late.status_code == 504, late.text
        error = late.json()["error"]
        run_id = late.headers["location"].rsplit("/", 1)[1]
        assert error["code"] == "run_pending" and run_id in error["message"]
        assert late.headers["x-should-retry"] == "false"
        assert preferred.status_code == 202
        assert preferred.json()["kind"] == "tool"
        assert preferred.headers["location"] == f"/v1/runs/{preferred.json()['id']}"
        for rid in (run_id, preferred.json()["id"]):
            for _ in range(100):
                done = runs.store.require(TENANT, rid)
                if done.status != "running":
                    break
                time.sleep(0.05)
            assert done.status == "succeeded", done
            assert done.result["tool"] == "summarize"
            assert "local simulator" in done.result["output"]["summary"]


def test_suggest_related_ranks_by_meaning_and_filters(
    store: DocumentStore, docs: dict[str, str]
) -> None:
    tool = registry.get("suggest_related")

    def related(**raw: Any) -> list[str]:
        output = run(tool.invoke(context(store, tool), raw))
        return [r["document_id"] for r in output["related"]]

    assert related(text="wind turbines", top_k=1) == [docs["text"]]
    assert related(text="ocean tides and tidal energy", top_k=1) == [docs["pdf"]]
    assert related(document_id=docs["image"], kinds=["image"]) == []  # never itself
    assert related(document_id=docs["pdf"], kinds=["markdown"]) == [docs["markdown"]]
    assert related(text="wind turbines", min_score=0.99) == []
    with pytest.raises(APIError) as foreign:
        related(document_id=docs["other_tenant"])
    assert foreign.value.status == 404


def _objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every object schema in `node`, nested ones included."""
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for item in node:
            yield from _objects(item)


def test_every_tool_definition_is_one_bedrock_and_the_others_take() -> None:
    """All tools in one request, as an agent offers them: botocore's own validation of the
    Converse request passes, and every object schema names only properties it declares."""
    import botocore.session
    from botocore.validate import ParamValidator

    from services.providers.base import Message, TextPart
    from services.providers.bedrock import converse_arguments

    definitions = [tool.definition() for tool in registry.tools().values()]
    request = CompletionRequest(
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        [Message("user", [TextPart("Summarize doc_1")])],
        tools=definitions,
        tool_choice="auto",
    )
    arguments = converse_arguments(request)
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    report = ParamValidator().validate(arguments, model.operation_model("Converse").input_shape)
    assert not report.has_errors(), report.generate_report()
    for definition in definitions:
        json.dumps(definition.parameters)  # plain JSON, as OpenAI and Anthropic send it
        for schema in _objects(definition.parameters):
            assert set(schema.get("required", [])) <= set(schema.get("properties", {}))

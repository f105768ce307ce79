"""Embeddings: the local model, the catalogue's embedding models, each provider's `embed`
against its fake upstream, the service's limits, and document vectors cached once."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from services.canonical import EmbeddingBatch
from services.documents.embeddings import EmbeddingLimits, EmbeddingResult, Embeddings, cosine
from services.documents.store import DocumentStore
from services.errors import APIError, InvalidRequest, NotFound
from services.models.catalogue import Catalogue, CatalogueConfig
from services.providers import bedrock, factories
from services.providers.base import Provider
from services.providers.local import LocalProvider, embed_text
from tests.fakes.bedrock import BINDING as BEDROCK_BINDING
from tests.fakes.bedrock import BedrockFake
from tests.fakes.openai import FakeOpenAI, fake_vector
from tests.fakes.openai_compatible import FakeOpenAICompatible
from tests.fakes.script import Fault, Script
from tests.fakes.serialized import moto_documents
from tests.pdf import make_pdf

T = TypeVar("T")
TABLE = "switchboard-test"
BUCKET = "switchboard-test-bucket"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def build(name: str, env: dict[str, str]) -> Provider:
    provider = factories()[name](env)
    assert provider is not None
    return provider


# -- the local model ------------------------------------------------------------------------


def test_local_vectors_are_deterministic_unit_length_and_sized() -> None:
    a = embed_text("The quarterly report shows growth")
    assert a == embed_text("The quarterly report shows growth")
    assert len(a) == 256 and abs(sum(v * v for v in a) - 1.0) < 1e-9
    assert len(embed_text("x", 32)) == 32
    assert embed_text("", 8) == [0.0] * 8


def test_local_similar_texts_are_closer_than_unrelated_ones() -> None:
    report = embed_text("Quarterly financial report: revenue and costs grew in Q3")
    related = embed_text("The financial reports show that revenue grew this quarter")
    unrelated = embed_text("Photos of cats playing in a sunny garden")
    assert cosine(report, related) > cosine(report, unrelated) + 0.2


def test_local_provider_embeds_and_refuses_its_chat_model() -> None:
    provider = LocalProvider()
    batch = run(provider.embed("embedding", ["one two", "three"], dimensions=16))
    assert [len(v) for v in batch.vectors] == [16, 16] and batch.input_tokens == 3
    with pytest.raises(InvalidRequest) as caught:
        run(provider.embed("simulator", ["x"]))
    assert caught.value.code == "model_not_embedding" and caught.value.param == "model"
    with pytest.raises(InvalidRequest) as caught:
        run(provider.embed("embedding", ["x"], dimensions=5000))
    assert caught.value.param == "dimensions"


def test_a_provider_without_embeddings_answers_400() -> None:
    provider = build("anthropic", {"ANTHROPIC_API_KEY": "sk-ant-test"})
    with pytest.raises(InvalidRequest) as caught:
        run(provider.embed("claude-haiku-4-5", ["x"]))
    assert caught.value.status == 400
    assert "anthropic/claude-haiku-4-5" in caught.value.message


# -- the catalogue --------------------------------------------------------------------------


def test_the_catalogue_offers_embedding_models_of_configured_providers() -> None:
    config = CatalogueConfig.load()
    local_only = Catalogue({"local": LocalProvider()}, config)
    assert local_only.embedding_names() == ["local/embedding"]
    openai = build("openai", {"OPENAI_API_KEY": "sk-test"})
    both = Catalogue({"local": LocalProvider(), "openai": openai}, config)
    assert "openai/text-embedding-3-small" in both.embedding_names()
    found = both.resolve_embedding("openai/text-embedding-3-small")
    assert (found.provider, found.model, found.dimensions) == (
        openai,
        "text-embedding-3-small",
        1536,
    )
    with pytest.raises(InvalidRequest) as caught:
        both.resolve_embedding("local/simulator")
    assert caught.value.code == "model_not_embedding"
    with pytest.raises(NotFound):
        both.resolve_embedding("openai/nope")
    assert set(both.embedding_names()).isdisjoint(both.names())


def test_a_provider_adds_embedding_models_from_its_environment() -> None:
    compatible = build(
        "openai_compatible",
        {
            "SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL": "http://127.0.0.1:9/v1",
            "SWITCHBOARD_OPENAI_COMPATIBLE_MODELS": "llama3.2",
            "SWITCHBOARD_OPENAI_COMPATIBLE_EMBEDDING_MODELS": "nomic-embed-text, bge-m3",
        },
    )
    catalogue = Catalogue({"openai_compatible": compatible}, CatalogueConfig.load())
    assert catalogue.embedding_names() == [
        "openai_compatible/bge-m3",
        "openai_compatible/nomic-embed-text",
    ]
    assert (
        bedrock.create({"SWITCHBOARD_BEDROCK_EMBEDDING_MODELS": "x"}, client=object()) is not None
    )


# -- providers against their fakes -----------------------------------------------------------


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.start()
    yield fake
    fake.stop()


def test_openai_embeds_in_input_order(openai_fake: FakeOpenAI) -> None:
    provider = build(
        "openai",
        {"OPENAI_API_KEY": "sk-fake", "SWITCHBOARD_OPENAI_BASE_URL": f"{openai_fake.url}/v1"},
    )
    batch = run(provider.embed("text-embedding-3-small", ["alpha beta", "gamma"], dimensions=3))
    assert batch.vectors == [fake_vector("alpha beta", 3), fake_vector("gamma", 3)]
    assert batch.input_tokens == 3
    sent = openai_fake.requests[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.json()["dimensions"] == 3 and sent.headers["authorization"] == "Bearer sk-fake"


def test_openai_embedding_errors_keep_the_upstream_verdict(openai_fake: FakeOpenAI) -> None:
    provider = build(
        "openai",
        {"OPENAI_API_KEY": "sk-fake", "SWITCHBOARD_OPENAI_BASE_URL": f"{openai_fake.url}/v1"},
    )
    openai_fake.enqueue(Script(fault=Fault("status", status=400, message="bad dimensions")))
    with pytest.raises(APIError) as caught:
        run(provider.embed("text-embedding-3-small", ["x"], dimensions=7))
    assert caught.value.status == 400 and "bad dimensions" in caught.value.message
    openai_fake.enqueue(Script(fault=Fault("status", status=429)))
    with pytest.raises(APIError) as caught:
        run(provider.embed("text-embedding-3-small", ["x"]))
    assert caught.value.status == 429


def test_openai_compatible_posts_to_embeddings() -> None:
    fake = FakeOpenAICompatible()
    fake.start()
    try:
        provider = build(
            "openai_compatible",
            {
                "SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL": f"{fake.url}/v1",
                "SWITCHBOARD_OPENAI_COMPATIBLE_MODELS": "llama3.2",
            },
        )
        batch = run(provider.embed("nomic-embed-text", ["one", "two three"]))
        assert batch.vectors == [fake_vector("one"), fake_vector("two three")]
        assert fake.requests[-1].json()["model"] == "nomic-embed-text"
        fake.enqueue(Script(fault=Fault("status", status=404, message="no such model")))
        with pytest.raises(APIError) as caught:
            run(provider.embed("missing", ["x"]))
        assert caught.value.status == 404
    finally:
        fake.stop()


@pytest.mark.parametrize("model", ["amazon.titan-embed-text-v2:0", "cohere.embed-english-v3"])
def test_bedrock_embeds_with_invoke_model(model: str) -> None:
    fake = BedrockFake()
    fake.start()
    try:
        env = dict(BEDROCK_BINDING.env(fake.url))
        provider = build("bedrock", {**env, "SWITCHBOARD_BEDROCK_EMBEDDING_MODELS": model})
        assert provider.embedding_models() == [model]
        batch = run(provider.embed(model, ["red apple", "green"]))
        assert batch.vectors == [fake_vector("red apple"), fake_vector("green")]
        paths = {r.path for r in fake.requests}
        assert all(p.endswith("/invoke") for p in paths)
        if model.startswith("amazon"):
            assert batch.input_tokens == 3 and len(fake.requests) == 2
            assert run(provider.embed(model, ["x"], dimensions=2)).vectors == [[1.0, 120.0]]
        else:
            assert len(fake.requests) == 1
            with pytest.raises(InvalidRequest):
                run(provider.embed(model, ["x"], dimensions=2))
        run(provider.aclose())
    finally:
        fake.stop()


# -- the service ----------------------------------------------------------------------------


class Counting(LocalProvider):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingBatch:
        self.calls += 1
        return await super().embed(model, inputs, dimensions=dimensions)


def service(documents: DocumentStore | None = None, provider: Provider | None = None) -> Embeddings:
    catalogue = Catalogue({"local": provider or LocalProvider()}, CatalogueConfig.load())
    limits = EmbeddingLimits(max_inputs=3, max_input_chars=50)
    return Embeddings(catalogue, documents, limits)


def test_embed_defaults_to_the_local_model() -> None:
    result = run(service().embed(None, ["hello world"]))
    assert result.model == "local/embedding" and result.prompt_tokens == 2
    assert result.vectors == [embed_text("hello world")]


def test_with_the_simulator_off_only_real_embedding_models_are_offered() -> None:
    """The local model is hashed trigrams, not a learned one: it goes with the simulator,
    and the default falls to the first real model, or a 503 that says what to do."""
    config = CatalogueConfig.load()
    off = Catalogue({"local": LocalProvider()}, config, simulator="off")
    assert off.embedding_names() == []
    with pytest.raises(NotFound) as caught:
        off.resolve_embedding("local/embedding")
    assert "SWITCHBOARD_SIMULATOR=off" in caught.value.message
    with pytest.raises(APIError) as refused:
        run(Embeddings(off).embed(None, ["hello"]))
    assert (refused.value.status, refused.value.code) == (503, "no_embedding_model")

    openai = build("openai", {"OPENAI_API_KEY": "sk-test"})
    real = Catalogue({"local": LocalProvider(), "openai": openai}, config, simulator="off")
    assert "local/embedding" not in real.embedding_names()
    # The catalogue's order: its first real model (the cheapest) is the default.
    assert Embeddings(real).default() == "openai/text-embedding-3-small"
    on = Catalogue({"local": LocalProvider(), "openai": openai}, config, simulator="on")
    assert Embeddings(on).default() == "local/embedding"


@pytest.mark.parametrize(
    ("inputs", "code", "param"),
    [
        ([], "invalid_value", "input"),
        (["a", "b", "c", "d"], "too_many_inputs", "input"),
        (["a", ""], "invalid_value", "input[1]"),
        (["x" * 51], "input_too_long", "input"),
    ],
)
def test_embed_limits(inputs: list[str], code: str, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        run(service().embed(None, inputs))
    assert (caught.value.code, caught.value.param) == (code, param)


def test_the_answer_in_base64_is_little_endian_float32() -> None:
    public = EmbeddingResult("local/embedding", [[0.5, -1.25]], 1).public("base64")
    raw = base64.b64decode(public["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -1.25)
    assert public["usage"] == {"prompt_tokens": 1, "total_tokens": 1}


@pytest.fixture
def documents() -> Iterator[DocumentStore]:
    with moto_documents(TABLE, BUCKET) as documents:
        yield documents


def test_a_document_vector_is_made_once_and_cached(documents: DocumentStore) -> None:
    provider = Counting()
    embeddings = service(documents, provider)
    doc = run(documents.put("acme", "plan.md", "text/markdown", b"# Launch plan\nShip it"))
    first = run(embeddings.document_vector("acme", doc.id))
    again = run(embeddings.document_vector("acme", doc.id))
    assert first == pytest.approx(again, abs=1e-6) and provider.calls == 1
    assert first == pytest.approx(embed_text("plan.md\n\n# Launch plan\nShip it"), abs=1e-6)
    with pytest.raises(NotFound):
        run(embeddings.document_vector("globex", doc.id))
    image = run(documents.put("acme", "sunset.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"0" * 8))
    assert run(embeddings.document_vector("acme", image.id)) == pytest.approx(
        embed_text("sunset.png"), abs=1e-6
    )


def test_a_related_document_ranks_above_an_unrelated_one(documents: DocumentStore) -> None:
    embeddings = service(documents)
    pages = ["Quarterly financial report", "Revenue grew and costs fell in the third quarter"]
    report = run(documents.put("acme", "q3-report.pdf", "application/pdf", make_pdf(pages)))
    related = run(
        documents.put(
            "acme", "q2-report.txt", "text/plain", b"Financial report: revenue and costs by quarter"
        )
    )
    unrelated = run(
        documents.put("acme", "recipes.txt", "text/plain", b"Bake the bread for forty minutes")
    )
    query = run(embeddings.document_vector("acme", report.id))
    scores = {
        doc.id: cosine(query, run(embeddings.document_vector("acme", doc.id)))
        for doc in (related, unrelated)
    }
    assert scores[related.id] > scores[unrelated.id]

"""`openai_compatible`: any server that speaks OpenAI's Chat Completions (Ollama, vLLM,
LM Studio, llama.cpp's server), at a configured base URL, with its own key or none.

The translation is the `openai` adapter's, in the older dialect these servers all read:
the reply limit goes as `max_tokens` and `developer` messages go as `system`. The wire is
not the SDK's: requests go over the lean pooled HTTP/1.1 client (`services/web/http1.py`) and
orjson, because this is the path that self-hosted models take at volume, where the SDK's
own cost per call (milliseconds of CPU) would exceed everything else Switchboard does.

Environment:
- `SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL` (required; without it the provider is not
  offered), e.g. `http://localhost:11434/v1` for Ollama.
- `SWITCHBOARD_OPENAI_COMPATIBLE_MODELS` (required with the base URL): comma-separated ids.
- `SWITCHBOARD_OPENAI_COMPATIBLE_API_KEY` (optional; without it no Authorization header).
- `SWITCHBOARD_OPENAI_COMPATIBLE_CONTEXT_TOKENS` (optional): the models' context window.
- `SWITCHBOARD_OPENAI_COMPATIBLE_EMBEDDING_MODELS` (optional): embedding model ids it
  serves at `POST /embeddings` (for Ollama, e.g. `nomic-embed-text`).
- `SWITCHBOARD_OPENAI_COMPATIBLE_TIMEOUT_<PHASE>_SECONDS`, as for every provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from services.config import env_int
from services.providers._per_loop import PerLoop
from services.providers.base import (
    DEFAULT_CONTEXT_WINDOW,
    Completion,
    CompletionRequest,
    EmbeddingBatch,
    StreamEvent,
)
from services.providers.errors import (
    ProviderError,
    connection_failed,
    failed_mid_stream,
    from_status,
    malformed,
)
from services.providers.openai import (
    ChunkReader,
    OpenAIProvider,
    OpenAISettings,
    _upstream_message,
    completion_from_json,
    embeddings_from_json,
    model_list,
    optional_model_list,
    retry_after,
)
from services.providers.timeouts import Timeouts
from services.web import http1, sse


class OpenAICompatibleProvider(OpenAIProvider):
    """An OpenAI-compatible server: the `openai` adapter in the older dialect."""

    name = "openai_compatible"
    max_tokens_field = "max_tokens"
    developer_role = False

    def __init__(self, settings: OpenAISettings) -> None:
        super().__init__(settings)
        self._pools = PerLoop(
            lambda: http1.ConnectionPool(
                settings.base_url, connect_timeout=settings.timeouts.connect
            )
        )
        headers = {"content-type": "application/json", "accept": "application/json"}
        if settings.api_key is not None:
            headers["authorization"] = f"Bearer {settings.api_key}"
        self._headers = http1.encode_headers(headers)  # the same on every request

    async def complete(self, request: CompletionRequest) -> Completion:
        return completion_from_json(self.name, await self._post_json(self.chat_params(request)))

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingBatch:
        """`POST /embeddings`, as floats."""
        params: dict[str, Any] = {"model": model, "input": inputs, "encoding_format": "float"}
        if dimensions is not None:
            params["dimensions"] = dimensions
        answer = await self._post_json(params, "/embeddings")
        return embeddings_from_json(self.name, answer, len(inputs))

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        async for batch in self.stream_batches(request):
            for event in batch:
                yield event

    async def stream_batches(self, request: CompletionRequest) -> AsyncIterator[list[StreamEvent]]:
        """The events of each network read together: the hot path handles a read's worth
        of chunks in one pass."""
        params = {
            **self.chat_params(request),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        response = await self._post(params)
        reader = ChunkReader(self.name)
        parser = sse.Parser()
        try:
            async for data in response.chunks():
                batch: list[StreamEvent] = []
                done = False
                for found in parser.feed(data):
                    if found.data == "[DONE]":
                        done = True
                        break
                    batch.extend(reader.feed(self._chunk(found.data)))
                if batch:
                    yield batch
                if done:
                    reader.end()
                    return
        except http1.HTTPError as exc:
            raise self._transport_error(exc) from None
        finally:
            await response.aclose()
        reader.end()

    async def aclose(self) -> None:
        pool = self._pools.take()
        if pool is not None:
            await pool.aclose()

    async def _post_json(
        self, params: dict[str, Any], path: str = "/chat/completions"
    ) -> dict[str, Any]:
        """`_post`, and the whole answer as a JSON object."""
        response = await self._post(params, path)
        try:
            body = await response.read()
        except http1.HTTPError as exc:
            raise self._transport_error(exc) from None
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise malformed(self.name, "the answer is not JSON") from None
        if not isinstance(answer, dict):
            raise malformed(self.name, "the answer is not a JSON object")
        return answer

    async def _post(
        self, params: dict[str, Any], path: str = "/chat/completions"
    ) -> http1.Response:
        """Send the request; a non-200 answer is raised as the upstream's error."""
        try:
            response = await self._pools.get().request(
                "POST", path, self._headers, orjson.dumps(params)
            )
        except http1.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status != 200:
            try:
                body = await response.read()
            except http1.HTTPError:
                body = b""
            try:
                detail: Any = orjson.loads(body)
            except orjson.JSONDecodeError:
                detail = body.decode(errors="replace")
            raise from_status(
                self.name,
                response.status,
                _upstream_message(detail, f"HTTP {response.status}"),
                retry_after=retry_after(response.headers),
            )
        return response

    def _chunk(self, payload: str) -> dict[str, Any]:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise malformed(self.name, f"a stream chunk is not JSON: {payload[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise malformed(self.name, "a stream chunk is not a JSON object")
        if "error" in chunk:
            raise failed_mid_stream(
                self.name, _upstream_message(chunk, "error event in the stream")
            )
        return chunk

    def _transport_error(self, exc: http1.HTTPError) -> ProviderError:
        if isinstance(exc, http1.ProtocolError):
            return malformed(self.name, str(exc))
        return connection_failed(self.name, str(exc))


def create(env: Mapping[str, str]) -> OpenAICompatibleProvider | None:
    base_url = env.get("SWITCHBOARD_OPENAI_COMPATIBLE_BASE_URL") or None
    if base_url is None:
        return None
    return OpenAICompatibleProvider(
        OpenAISettings(
            models=model_list(env, "SWITCHBOARD_OPENAI_COMPATIBLE_MODELS"),
            api_key=env.get("SWITCHBOARD_OPENAI_COMPATIBLE_API_KEY") or None,
            base_url=base_url,
            timeouts=Timeouts.from_env(env, "openai_compatible"),
            context_tokens=env_int(
                env,
                "SWITCHBOARD_OPENAI_COMPATIBLE_CONTEXT_TOKENS",
                DEFAULT_CONTEXT_WINDOW,
                minimum=16,
            ),
            embedding_models=optional_model_list(
                env, "SWITCHBOARD_OPENAI_COMPATIBLE_EMBEDDING_MODELS"
            ),
        )
    )

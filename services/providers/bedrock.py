"""`bedrock`: Amazon Bedrock's Converse and ConverseStream, through boto3's `bedrock-runtime`.

Offered only when `SWITCHBOARD_BEDROCK_MODELS` lists the model ids this deployment may
use (comma-separated): Bedrock's credentials come from the task role and cannot be checked
at start-up. `SWITCHBOARD_BEDROCK_EMBEDDING_MODELS` lists embedding models (Titan Text
Embeddings, Cohere Embed), called with InvokeModel.
Region: `SWITCHBOARD_BEDROCK_REGION`, else `AWS_REGION`/`AWS_DEFAULT_REGION`.
`SWITCHBOARD_BEDROCK_ENDPOINT_URL` points the client elsewhere (the tests' fake).
`SWITCHBOARD_BEDROCK_MAX_CONCURRENCY` (default 64) bounds the calls in flight.

Thread model. boto3 blocks, so every call runs in this provider's own bounded thread pool
(one thread per call in flight, one pooled connection per thread), never on the event
loop. A stream's events are read in a pool thread and handed to the loop through an
`asyncio.Queue`; the loop waits for each with the first-byte or idle timeout. When the
consumer stops early (the client went away, or a timeout), the stream's socket is shut
down, which wakes the reading thread at once; it closes the stream and returns to the
pool. A non-streaming call cannot be interrupted: an abandoned one keeps its thread until
Bedrock answers or the read timeout passes.

Usage. Bedrock's `inputTokens` counts only the prompt tokens neither read from nor written
to the prompt cache (`cacheReadInputTokens` and `cacheWriteInputTokens` are reported
beside it). Canonical `input_tokens` is every prompt token, so it is the sum of the three;
`cached_input_tokens` is `cacheReadInputTokens`.

Translation notes. System and developer messages, wherever they stand, become `system`
blocks. Converse takes images only as bytes: a base64 `data:` URL is sent as bytes, an
http(s) URL is refused with a 400 naming the part. An image's `detail` hint has no
Converse equivalent and is not sent. `tool_choice` "none" omits `toolConfig` (Converse has
no "none"), which Bedrock refuses when the history holds tool calls: that is a 400 here.
Reasoning blocks in the answer are not part of the canonical types and are not returned.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import urllib3.exceptions
from botocore.eventstream import ParserError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    ParamValidationError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError as BotoHTTPClientError
from botocore.exceptions import ReadTimeoutError as BotoReadTimeoutError

from services.canonical import (
    DEFAULT_CONTEXT_WINDOW,
    Completion,
    CompletionRequest,
    ContentPart,
    EmbeddingBatch,
    Finish,
    ImagePart,
    StopReason,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from services.config import ConfigError, env_int, env_optional
from services.errors import APIError, InvalidRequest, untranslatable
from services.providers.base import Provider
from services.providers.errors import (
    ProviderError,
    connection_failed,
    from_status,
    malformed,
    timed_out,
)
from services.providers.timeouts import Timeouts

NAME = "bedrock"
DEFAULT_CONCURRENCY = 64

STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
# `malformed_model_output` and `malformed_tool_use` (and any reason added later) are
# failures of the model, reported as retryable errors rather than guessed at.

# Error types whose HTTP status does not say what Switchboard should do with them. The
# lower-case ones are the error events ConverseStream sends inside a stream (no status).
_STATUS_BY_ERROR = {
    "ModelErrorException": 502,  # 424 from Bedrock: the model failed, another try may not
    "ModelNotReadyException": 503,  # 429 from Bedrock, but it is the model warming up
    "throttlingException": 429,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
    "modelStreamErrorException": 502,
    "validationException": 400,
}

_IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
_DATA_URL = re.compile(r"data:image/([a-zA-Z]+);base64,(.*)", re.DOTALL)

# Context windows of the model families Bedrock serves, by model id prefix (after any
# cross-region inference profile prefix such as `us.` or `global.`).
_CONTEXT_WINDOWS = (
    ("anthropic.claude", 200_000),
    ("amazon.nova-micro", 128_000),
    ("amazon.nova", 300_000),
    ("meta.llama3", 128_000),
    ("meta.llama4", 128_000),
    ("mistral.", 128_000),
)
_PROFILE_PREFIX = re.compile(r"^(us|eu|apac|us-gov|global|jp|au|ca)\.")

_T = TypeVar("_T")
_END = object()


class BedrockProvider(Provider):
    """Converse and ConverseStream on a shared boto3 `bedrock-runtime` client (thread-safe),
    called from this provider's own bounded thread pool."""

    name = NAME

    def __init__(
        self,
        client: Any,
        models: list[str],
        *,
        timeouts: Timeouts | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        embedding_models: list[str] | None = None,
    ) -> None:
        self._client = client
        self._models = models
        self._embedding_models = list(embedding_models or [])
        self._timeouts = timeouts or Timeouts()
        self._executor = ThreadPoolExecutor(max_concurrency, thread_name_prefix="bedrock")
        self._busy = 0
        self._busy_lock = threading.Lock()

    def models(self) -> list[str]:
        return list(self._models)

    def context_window(self, model: str) -> int:
        bare = _PROFILE_PREFIX.sub("", model)
        for prefix, tokens in _CONTEXT_WINDOWS:
            if bare.startswith(prefix):
                return tokens
        return DEFAULT_CONTEXT_WINDOW

    def embedding_models(self) -> list[str]:
        return list(self._embedding_models)

    async def embed(
        self, model: str, inputs: list[str], *, dimensions: int | None = None
    ) -> EmbeddingBatch:
        """InvokeModel on an embedding model: Cohere Embed takes the whole batch in one
        call; Titan Text Embeddings takes one text per call, so the inputs go as
        concurrent calls (each in a pool thread)."""
        loop = asyncio.get_running_loop()

        def invoke(body: dict[str, Any]) -> dict[str, Any]:
            response = self._client.invoke_model(
                modelId=model,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            answer = json.loads(response["body"].read())
            if not isinstance(answer, dict):
                raise malformed(NAME, "the embedding answer is not a JSON object")
            return answer

        async def call(body: dict[str, Any]) -> dict[str, Any]:
            try:
                return await loop.run_in_executor(
                    self._executor, self._counted(lambda: invoke(body))
                )
            except Exception as exc:
                raise self._error(exc, "first byte", self._timeouts.first_byte) from exc

        if _PROFILE_PREFIX.sub("", model).startswith("cohere.embed"):
            if dimensions is not None:
                raise untranslatable(
                    "dimensions", f"Bedrock's {model} does not take 'dimensions'; remove it."
                )
            answer = await call({"texts": inputs, "input_type": "search_document"})
            vectors = answer.get("embeddings")
            if not isinstance(vectors, list) or len(vectors) != len(inputs):
                raise malformed(NAME, f"the answer does not hold {len(inputs)} embeddings")
            return EmbeddingBatch([[float(v) for v in vector] for vector in vectors])
        extra: dict[str, Any] = {"dimensions": dimensions} if dimensions is not None else {}
        answers = await asyncio.gather(*(call({"inputText": text, **extra}) for text in inputs))
        vectors = [answer.get("embedding") for answer in answers]
        if not all(isinstance(vector, list) for vector in vectors):
            raise malformed(NAME, "an answer holds no 'embedding'")
        return EmbeddingBatch(
            [[float(v) for v in vector or []] for vector in vectors],
            sum(int(answer.get("inputTextTokenCount") or 0) for answer in answers),
        )

    @property
    def threads_in_use(self) -> int:
        """How many pool threads are inside a boto3 call or reading a stream right now."""
        return self._busy

    async def complete(self, request: CompletionRequest) -> Completion:
        arguments = converse_arguments(request)
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(
                self._executor, self._counted(lambda: self._client.converse(**arguments))
            )
        except Exception as exc:
            raise self._error(exc, "first byte", self._timeouts.first_byte) from exc
        return completion_from(response)

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        arguments = converse_arguments(request)
        queue: asyncio.Queue[object] = asyncio.Queue()
        pump = _StreamPump(self._client, arguments, asyncio.get_running_loop(), queue)
        self._executor.submit(self._counted(pump.run))
        reader = _StreamReader()
        phase, timeout = "first byte", self._timeouts.first_byte
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    raise timed_out(NAME, phase, timeout) from None
                if item is _END:
                    break
                if isinstance(item, Exception):
                    raise self._error(item, phase, timeout) from item
                assert isinstance(item, dict)
                for event in reader.read(item):
                    yield event
                phase, timeout = "idle gap between chunks", self._timeouts.idle
            if not reader.finished:
                raise malformed(NAME, "the stream ended before messageStop")
        finally:
            pump.stop()

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _counted(self, call: Callable[[], _T]) -> Callable[[], _T]:
        def counted() -> _T:
            with self._busy_lock:
                self._busy += 1
            try:
                return call()
            finally:
                with self._busy_lock:
                    self._busy -= 1

        return counted

    def _error(self, exc: Exception, phase: str, timeout: float) -> APIError:
        return translate_error(exc, phase, timeout, self._timeouts)


class _StreamPump:
    """Runs in a pool thread: calls ConverseStream and puts each event (then `_END`, or the
    exception that ended it) on the loop's queue, until the stream ends or `stop()`."""

    def __init__(
        self,
        client: Any,
        arguments: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[object],
    ) -> None:
        self._client = client
        self._arguments = arguments
        self._loop = loop
        self._queue = queue
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._events: Any = None

    def run(self) -> None:
        try:
            if self._stopped.is_set():
                return
            events = self._client.converse_stream(**self._arguments)["stream"]
            with self._lock:
                self._events = events
            if self._stopped.is_set():  # stop() came during the call and saw no stream yet
                return
            for event in events:
                if self._stopped.is_set():
                    return
                self._put(event)
            self._put(_END)
        except Exception as exc:
            if not self._stopped.is_set():
                self._put(exc)
        finally:
            with self._lock:
                events, self._events = self._events, None
            if events is not None:
                events.close()

    def stop(self) -> None:
        """Called on the loop: make the thread finish now, even if it is blocked reading."""
        self._stopped.set()
        with self._lock:
            events = self._events
        if events is not None:
            _interrupt(events)

    def _put(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopped.set()


def _interrupt(events: Any) -> None:
    """Shut down the socket under a botocore `EventStream` so that a read blocked on it in
    another thread returns at once. Closing the stream instead would wait, on the event
    loop, for that read to finish (the buffered reader's lock is held while it blocks)."""
    raw: Any = getattr(events, "_raw_stream", None)  # botocore keeps urllib3's response here
    # urllib3 >= 2.3: shutdown(SHUT_RD) on the connection's socket. It raises when the
    # response is already finished, released or closed: then nothing is blocked on it.
    with contextlib.suppress(AttributeError, ValueError, RuntimeError, OSError):
        raw.shutdown()


class _StreamReader:
    """ConverseStream events to canonical stream events."""

    def __init__(self) -> None:
        self._tool_index: dict[int, int] = {}  # contentBlockIndex -> tool call index
        self.finished = False

    def read(self, event: dict[str, Any]) -> list[StreamEvent]:
        if "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            delta = body.get("delta", {})
            if delta.get("text"):
                return [TextDelta(delta["text"])]
            if "toolUse" in delta:
                index = self._tool_index.get(body.get("contentBlockIndex", -1))
                if index is None:
                    raise malformed(NAME, "a toolUse delta for a block that was never started")
                return [ToolCallDelta(index, arguments=delta["toolUse"].get("input", ""))]
            return []
        if "contentBlockStart" in event:
            body = event["contentBlockStart"]
            tool = body.get("start", {}).get("toolUse")
            if tool is None:
                return []
            index = len(self._tool_index)
            self._tool_index[body.get("contentBlockIndex", -1)] = index
            return [ToolCallDelta(index, id=tool["toolUseId"], name=tool["name"])]
        if "messageStop" in event:
            self.finished = True
            return [Finish(stop_reason(event["messageStop"].get("stopReason")))]
        if "metadata" in event:
            usage = event["metadata"].get("usage")
            return [UsageReport(usage_from(usage))] if usage else []
        return []  # messageStart, contentBlockStop


def converse_arguments(request: CompletionRequest) -> dict[str, Any]:
    """The keyword arguments of `converse`/`converse_stream` for a canonical request.
    Raises a 400 naming the field for anything Converse cannot express."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    has_tool_blocks = False
    for i, message in enumerate(request.messages):
        if message.role in ("system", "developer"):
            for j, part in enumerate(message.content):
                if not isinstance(part, TextPart):
                    raise untranslatable(
                        f"messages[{i}].content[{j}]",
                        "Bedrock takes only text in system and developer messages.",
                    )
                if part.text:
                    system.append({"text": part.text})
            continue
        if message.role == "tool":
            if not message.tool_call_id:
                raise untranslatable(
                    f"messages[{i}].tool_call_id", "A tool message needs the tool_call_id."
                )
            result = {
                "toolUseId": message.tool_call_id,
                "content": _content(message.content, i) or [{"text": ""}],
            }
            blocks = [{"toolResult": result}]
            role = "user"
            has_tool_blocks = True
        else:
            blocks = _content(message.content, i)
            role = message.role
            for k, call in enumerate(message.tool_calls):
                blocks.append({"toolUse": _tool_use(call, f"messages[{i}].tool_calls[{k}]")})
                has_tool_blocks = True
        if turns and turns[-1]["role"] == role:  # Converse alternates roles: merge
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    arguments: dict[str, Any] = {"modelId": request.model, "messages": turns}
    if system:
        arguments["system"] = system
    inference: dict[str, Any] = {}
    if request.max_tokens is not None:
        inference["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    if request.stop:
        inference["stopSequences"] = list(request.stop)
    if inference:
        arguments["inferenceConfig"] = inference
    tool_config = _tool_config(request, has_tool_blocks)
    if tool_config is not None:
        arguments["toolConfig"] = tool_config
    if request.user:
        arguments["requestMetadata"] = {"user": request.user}
    return arguments


def _content(parts: list[ContentPart], i: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        if isinstance(part, TextPart):
            if part.text:  # Converse refuses empty text blocks
                blocks.append({"text": part.text})
        else:
            blocks.append({"image": _image(part, f"messages[{i}].content[{j}]")})
    return blocks


def _image(part: ImagePart, param: str) -> dict[str, Any]:
    if part.url.startswith(("http://", "https://")):
        raise untranslatable(
            param,
            "Bedrock does not fetch images by URL: send the image inline as a base64 data: URL.",
        )
    match = _DATA_URL.fullmatch(part.url)
    if match is None:
        raise untranslatable(param, "An image must be a base64 data:image/...;base64, URL.")
    image_format = _IMAGE_FORMATS.get(match.group(1).lower())
    if image_format is None:
        raise untranslatable(
            param, f"Bedrock takes png, jpeg, gif or webp images, not image/{match.group(1)}."
        )
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise untranslatable(param, "The image's base64 data is not valid.") from None
    return {"format": image_format, "source": {"bytes": data}}


def _tool_use(call: ToolCall, param: str) -> dict[str, Any]:
    try:
        arguments = json.loads(call.arguments) if call.arguments.strip() else {}
    except json.JSONDecodeError:
        raise untranslatable(
            f"{param}.function.arguments", "The tool call's arguments are not valid JSON."
        ) from None
    if not isinstance(arguments, dict):
        raise untranslatable(
            f"{param}.function.arguments", "Bedrock needs a tool call's arguments as a JSON object."
        )
    return {"toolUseId": call.id, "name": call.name, "input": arguments}


def _tool_config(request: CompletionRequest, has_tool_blocks: bool) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice == "none":
        if has_tool_blocks:
            raise untranslatable(
                "tool_choice",
                'Bedrock has no tool_choice "none" for a conversation that holds tool calls.',
            )
        return None
    if not request.tools:
        if choice is not None:
            raise untranslatable("tool_choice", "tool_choice needs tools.")
        if has_tool_blocks:
            raise untranslatable(
                "tools", "Bedrock needs the tool definitions when the history holds tool calls."
            )
        return None
    config: dict[str, Any] = {
        "tools": [
            {
                "toolSpec": {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description else {}),
                    "inputSchema": {"json": tool.parameters},
                }
            }
            for tool in request.tools
        ]
    }
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if choice.get("type") != "function" or not isinstance(name, str):
            raise untranslatable(
                "tool_choice", 'tool_choice must be {"type": "function", "function": {"name"}}.'
            )
        config["toolChoice"] = {"tool": {"name": name}}
    elif choice is not None:
        raise untranslatable("tool_choice", f"Unknown tool_choice {choice!r}.")
    return config


def completion_from(response: Mapping[str, Any]) -> Completion:
    content = response.get("output", {}).get("message", {}).get("content", [])
    text: list[str] = []
    calls: list[ToolCall] = []
    for block in content:
        if "text" in block:
            text.append(block["text"])
        elif "toolUse" in block:
            use = block["toolUse"]
            calls.append(ToolCall(use["toolUseId"], use["name"], json.dumps(use.get("input", {}))))
    return Completion(
        text="".join(text),
        stop_reason=stop_reason(response.get("stopReason")),
        usage=usage_from(response.get("usage") or {}),
        tool_calls=calls,
    )


def stop_reason(native: str | None) -> StopReason:
    mapped = STOP_REASONS.get(native or "")
    if mapped is None:
        raise malformed(NAME, f"the model stopped with {native!r}")
    return mapped


def usage_from(native: Mapping[str, Any]) -> Usage:
    read = int(native.get("cacheReadInputTokens") or 0)
    written = int(native.get("cacheWriteInputTokens") or 0)
    return Usage(
        input_tokens=int(native.get("inputTokens") or 0) + read + written,
        output_tokens=int(native.get("outputTokens") or 0),
        cached_input_tokens=read,
    )


def translate_error(exc: Exception, phase: str, timeout: float, timeouts: Timeouts) -> APIError:
    """A boto3, botocore or urllib3 failure as the error the router and client act on.
    `phase` and `timeout` say what a read timeout was waiting for. Any other exception is
    a bug, and is raised as it is."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ClientError):  # includes EventStreamError, an error event in a stream
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or exc)
        metadata = exc.response.get("ResponseMetadata", {})
        status = _STATUS_BY_ERROR.get(code) or int(metadata.get("HTTPStatusCode") or 500)
        retry_after = _seconds(metadata.get("HTTPHeaders", {}).get("retry-after"))
        text = f"{message} ({code})" if code else message
        return from_status(NAME, status, text, retry_after=retry_after)
    if isinstance(exc, ConnectTimeoutError):
        return timed_out(NAME, "connect", timeouts.connect)
    if isinstance(exc, BotoReadTimeoutError | urllib3.exceptions.ReadTimeoutError):
        return timed_out(NAME, phase, timeout)
    if isinstance(
        exc, BotoConnectionError | BotoHTTPClientError | urllib3.exceptions.HTTPError | OSError
    ):
        return connection_failed(NAME, str(exc))
    if isinstance(exc, ParserError):
        return malformed(NAME, str(exc))
    if isinstance(exc, ParamValidationError):
        return InvalidRequest(f"Bedrock refused the request: {exc}", code="invalid_request")
    if isinstance(exc, NoCredentialsError):
        return ProviderError(
            f"{NAME}: no AWS credentials: {exc}",
            provider=NAME, retryable=False, status=502, code="upstream_authentication_failed",
        )  # fmt: skip
    if isinstance(exc, BotoCoreError):
        return malformed(NAME, str(exc))
    raise exc


def _seconds(value: object) -> float | None:
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None


def create(env: Mapping[str, str], client: Any = None) -> BedrockProvider | None:
    """Bedrock, when `SWITCHBOARD_BEDROCK_MODELS` names the chat models to offer or
    `SWITCHBOARD_BEDROCK_EMBEDDING_MODELS` the embedding models (InvokeModel)."""
    raw_models = env_optional(env, "SWITCHBOARD_BEDROCK_MODELS")
    raw_embedding = env_optional(env, "SWITCHBOARD_BEDROCK_EMBEDDING_MODELS")
    if raw_models is None and raw_embedding is None:
        return None
    models = [model.strip() for model in (raw_models or "").split(",") if model.strip()]
    if raw_models is not None and not models:
        raise ConfigError("SWITCHBOARD_BEDROCK_MODELS lists no model id")
    embedding = [model.strip() for model in (raw_embedding or "").split(",") if model.strip()]
    timeouts = Timeouts.from_env(env, NAME)
    concurrency = env_int(
        env, "SWITCHBOARD_BEDROCK_MAX_CONCURRENCY", DEFAULT_CONCURRENCY, minimum=1
    )
    if client is None:
        client = _client(env, timeouts, concurrency)
    return BedrockProvider(
        client,
        models,
        timeouts=timeouts,
        max_concurrency=concurrency,
        embedding_models=embedding,
    )


def _client(env: Mapping[str, str], timeouts: Timeouts, concurrency: int) -> Any:
    import boto3
    from botocore.config import Config

    region = (
        env_optional(env, "SWITCHBOARD_BEDROCK_REGION")
        or env_optional(env, "AWS_REGION")
        or env_optional(env, "AWS_DEFAULT_REGION")
    )
    if region is None:
        raise ConfigError(
            "SWITCHBOARD_BEDROCK_MODELS is set but no region is: set SWITCHBOARD_BEDROCK_REGION"
            " (or AWS_REGION)"
        )
    # Credentials from `env` when it holds them (tests, local runs); otherwise boto3's own
    # chain, which in ECS is the task role.
    session = boto3.session.Session(
        aws_access_key_id=env_optional(env, "AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env_optional(env, "AWS_SECRET_ACCESS_KEY"),
        aws_session_token=env_optional(env, "AWS_SESSION_TOKEN"),
        region_name=region,
    )
    config = Config(
        # One attempt: the router retries, with its own backoff and fallbacks. In botocore,
        # `max_attempts` counts retries; `total_max_attempts` counts the first call too.
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=timeouts.connect,
        # One socket read may wait for the whole non-streamed answer or a stream's first
        # event; the loop enforces the shorter idle gap between stream events itself.
        read_timeout=max(timeouts.first_byte, timeouts.idle),
        max_pool_connections=concurrency,
        tcp_keepalive=True,
    )
    return session.client(
        "bedrock-runtime",
        endpoint_url=env_optional(env, "SWITCHBOARD_BEDROCK_ENDPOINT_URL"),
        config=config,
    )

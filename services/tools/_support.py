"""What the tools share: where their input comes from (inline or a stored document) and
how they ask a model for text or for JSON. Not a tool (the registry skips `_` modules)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.canonical import ContentPart, ImagePart, Message, TextPart
from services.documents.model import DOCUMENT_ID
from services.errors import APIError, InvalidRequest
from services.tools.base import ToolContext, ToolFailed

M = TypeVar("M", bound=BaseModel)

# Inline text a tool reads at most (a 400 above it); a stored document's text is held to
# the tool's `limits.max_input_chars` (a 422 above it).
MAX_TEXT_CHARS = 200_000
# Images, inline or stored: within what OpenAI, Anthropic and Bedrock all take (5 MB).
MAX_IMAGE_BYTES = 5 * 1024 * 1024
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
DOCUMENT_ID_PATTERN = DOCUMENT_ID.pattern
DocumentId = Annotated[str, StringConstraints(pattern=DOCUMENT_ID_PATTERN)]
_DATA_URL = re.compile(r"^data:(image/[a-z+.-]+);base64,(.*)$", re.DOTALL)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


class StrictInput(BaseModel):
    """Tool inputs refuse unknown fields, so a misspelt option is a 400, not ignored."""

    model_config = ConfigDict(extra="forbid")


def document_id_field(description: str) -> Any:
    return Field(None, pattern=DOCUMENT_ID_PATTERN, description=description)


def text_field(description: str, max_length: int = MAX_TEXT_CHARS) -> Any:
    return Field(None, min_length=1, max_length=max_length, description=description)


def image_url_field() -> Any:
    return Field(
        None,
        max_length=8 * 1024 * 1024,
        description=(
            "The image: an https URL the model provider can fetch, or a base64 data URL "
            f"(data:image/png;base64,...) of at most {MAX_IMAGE_BYTES // (1024 * 1024)} MiB "
            f"({', '.join(IMAGE_TYPES)})."
        ),
    )


def one_of(model: BaseModel, first: str, second: str) -> None:
    """Exactly one of two fields is set; otherwise a 400 naming `first`."""
    given = [name for name in (first, second) if getattr(model, name) is not None]
    if len(given) != 1:
        raise PydanticCustomError(
            "one_source",
            "give exactly one of '{first}' or '{second}'",
            {"first": first, "second": second, "field": first if not given else second},
        )


def check_image_url(value: str | None) -> str | None:
    """An http(s) URL, or a base64 data URL of a supported image type and size."""
    if value is None:
        return None
    if value.startswith(("https://", "http://")):
        return value
    match = _DATA_URL.match(value)
    if match is None:
        raise ValueError("must be an http(s) URL or a data:image/...;base64, URL")
    if match.group(1) not in IMAGE_TYPES:
        raise ValueError(f"image type {match.group(1)} is not one of {', '.join(IMAGE_TYPES)}")
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the data URL's base64 payload is not valid base64") from None
    if not data:
        raise ValueError("the data URL holds no image")
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"the image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES}")
    return value


class TextInput(StrictInput):
    """Text inline (`text`) or as a stored pdf, text or markdown document (`document_id`)."""

    text: str | None = text_field("The text to work on. Give this or document_id.")
    document_id: str | None = document_id_field(
        "The id of one of your pdf, text or markdown documents (from POST /v1/documents), "
        "instead of text."
    )

    @model_validator(mode="after")
    def _one_source(self) -> TextInput:
        one_of(self, "text", "document_id")
        return self


class ImageInput(StrictInput):
    """An image inline (`image_url`) or as a stored image document (`document_id`)."""

    image_url: str | None = image_url_field()
    document_id: str | None = document_id_field(
        "The id of one of your image documents (from POST /v1/documents), instead of image_url."
    )

    @field_validator("image_url")
    @classmethod
    def check_url(cls, value: str | None) -> str | None:
        return check_image_url(value)

    @model_validator(mode="after")
    def _one_source(self) -> ImageInput:
        one_of(self, "image_url", "document_id")
        return self


async def load_text(
    ctx: ToolContext, tool: str, text: str | None, document_id: str | None, limit: int
) -> str:
    """The text to work on: `text` as given, or the stored text of the tenant's document
    `document_id` (404 if it is not theirs, 400 for an image, 422 over `limit`)."""
    if text is not None:
        return text
    assert document_id is not None
    await text_document(ctx, tool, document_id)
    content: str = await ctx.documents.text(ctx.tenant_id, document_id)
    if not content.strip():
        raise ToolFailed(
            f"Document '{document_id}' has no text to read (a scanned PDF has no text layer).",
            param="input.document_id",
        )
    if len(content) > limit:
        raise ToolFailed(
            f"Document '{document_id}' has {len(content)} characters of text; tool '{tool}' "
            f"reads at most {limit} (its max_input_chars limit).",
            param="input.document_id",
        )
    return content


async def text_document(ctx: ToolContext, tool: str, document_id: str) -> Any:
    """The tenant's ready pdf, text or markdown document (404 if it is not theirs, 409
    while it is not ready, 400 for an image)."""
    document = await ready_document(ctx, document_id)
    if document.kind == "image":
        raise InvalidRequest(
            f"Document '{document_id}' is an image ({document.content_type}); tool '{tool}' "
            "reads the text of pdf, text and markdown documents.",
            param="input.document_id",
            code="unsupported_document_kind",
        )
    return document


async def load_image(
    ctx: ToolContext, tool: str, image_url: str | None, document_id: str | None
) -> str:
    """The image as a URL a provider takes: `image_url` as given, or the tenant's image
    document as a base64 data URL (404 if it is not theirs, 400 if it is not an image)."""
    if image_url is not None:
        return image_url
    assert document_id is not None
    document = await ready_document(ctx, document_id)
    if document.kind != "image" or document.content_type not in IMAGE_TYPES:
        raise InvalidRequest(
            f"Document '{document_id}' is {document.kind} ({document.content_type}); tool "
            f"'{tool}' reads images ({', '.join(IMAGE_TYPES)}).",
            param="input.document_id",
            code="unsupported_document_kind",
        )
    data: bytes = await ctx.documents.content(ctx.tenant_id, document_id)
    if len(data) > MAX_IMAGE_BYTES:
        raise ToolFailed(
            f"Image '{document_id}' is {len(data)} bytes; models take at most {MAX_IMAGE_BYTES}.",
            param="input.document_id",
        )
    return f"data:{document.content_type};base64,{base64.b64encode(data).decode()}"


async def ready_document(ctx: ToolContext, document_id: str) -> Any:
    document = await ctx.documents.get(ctx.tenant_id, document_id)
    if document.status != "ready":
        raise APIError(
            f"Document '{document_id}' is {document.status.replace('_', ' ')}, not ready: "
            "finish its upload first.",
            status=409,
            type="invalid_request_error",
            param="input.document_id",
            code="document_not_ready",
        )
    return document


def messages(system: str, *content: str | ContentPart) -> list[Message]:
    parts = [TextPart(c) if isinstance(c, str) else c for c in content]
    return [Message("system", [TextPart(system)]), Message("user", parts)]


def image_part(url: str) -> ImagePart:
    return ImagePart(url)


async def ask_text(
    ctx: ToolContext, tool: str, system: str, *content: str | ContentPart, max_tokens: int
) -> str:
    """The model's plain-text answer; an empty answer is a `ToolFailed`."""
    completion = await ctx.complete(messages(system, *content), max_tokens=max_tokens)
    text = completion.text.strip()
    if not text:
        raise ToolFailed(f"The model gave tool '{tool}' an empty answer.")
    return text


async def ask_json(
    ctx: ToolContext,
    tool: str,
    system: str,
    *content: str | ContentPart,
    answer: type[M],
    schema: dict[str, Any] | None = None,
    max_tokens: int,
) -> M:
    """Ask for a JSON object matching `schema` (by default `answer`'s JSON Schema) and
    parse it as `answer`. An answer that is cut off, is not JSON, or does not match is a
    `ToolFailed` saying which, never a 500 and never a made-up result."""
    schema = schema if schema is not None else answer.model_json_schema()
    prompt = (
        f"{system}\n\nAnswer with only a JSON object, no prose and no code fence, "
        f"matching this JSON Schema: {json.dumps(schema, separators=(',', ':'))}"
    )
    completion = await ctx.complete(messages(prompt, *content), max_tokens=max_tokens)
    if completion.stop_reason == "length":
        raise ToolFailed(
            f"The model's answer for tool '{tool}' was cut off at the tool's limit of "
            f"{max_tokens} output tokens, before its JSON was complete."
        )
    return parse_json_answer(tool, completion.text, answer)


def parse_json_answer(tool: str, text: str, answer: type[M]) -> M:
    """`text` (a model's answer, perhaps in a code fence or with words around it) as
    `answer`; `ToolFailed` when it holds no JSON object that matches."""
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    excerpt = " ".join(text.split())[:160]
    if start == -1 or end < start:
        raise ToolFailed(
            f"The model's answer for tool '{tool}' is not the JSON object asked for: \"{excerpt}\"."
        )
    try:
        data = json.loads(body[start : end + 1])
    except ValueError as exc:
        raise ToolFailed(
            f"The model's answer for tool '{tool}' is not valid JSON ({exc}): \"{excerpt}\"."
        ) from None
    try:
        return answer.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "the answer"
        raise ToolFailed(
            f"The model's answer for tool '{tool}' does not match the expected shape: "
            f"{where}: {problem['msg']}."
        ) from None

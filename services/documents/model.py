"""Documents: what one is (its record, its upload, what extraction found), the named limits
on them (`DocumentSettings`, from `SWITCHBOARD_DOCUMENT_*`), and the checks on what a
client sends (ids, names, content types, folders), each a 400, 404 or 413 naming the field.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from services.config import ConfigError, env_int, env_optional
from services.errors import APIError, InvalidRequest, NotFound, PayloadTooLarge

DocumentKind = Literal["pdf", "text", "markdown", "image"]
DocumentStatus = Literal["pending_upload", "ready", "failed"]
KINDS: tuple[DocumentKind, ...] = ("pdf", "text", "markdown", "image")
# Inside DocumentStore, whose `list` method shadows the builtin in annotations.
Documents = list["Document"]
Vector = list[float]

MiB = 1024 * 1024
# A file in a request body travels base64-encoded (4/3 of its size) inside a JSON object.
# Through API Gateway the whole request must stay under Lambda's 6 MB invocation payload
# (API Gateway's own limit is 10 MB): 4 MiB of file is 5.6 MB of base64.
DEFAULT_MAX_UPLOAD_BYTES = 4 * MiB
DEFAULT_MAX_PRESIGNED_BYTES = 100 * MiB
DEFAULT_MAX_PDF_PAGES = 500
DEFAULT_MAX_TEXT_CHARS = 2_000_000
DEFAULT_UPLOAD_URL_SECONDS = 900
MAX_FILENAME_CHARS = 255
MAX_FOLDER_CHARS = 200
MAX_CONTENT_TYPE_CHARS = 255  # RFC 6838: type and subtype names are at most 127 characters
MAX_FOLDER_DEPTH = 8
# Room for the JSON around the base64 data in an upload request body.
_BODY_OVERHEAD_BYTES = 64 * 1024

DOCUMENT_ID = re.compile(r"^doc_[0-9a-f]{24}$")
_FOLDER_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][\w!#$&^.+-]{0,126}/[A-Za-z0-9][\w!#$&^.+-]{0,126}(;.*)?$")


class DocumentRejected(APIError):
    """422: the file is of a supported type but cannot be used (corrupt or encrypted PDF,
    too many pages, text that does not decode, too much text)."""

    status = 422
    type = "invalid_request_error"
    code = "document_rejected"


@dataclass(frozen=True, slots=True)
class DocumentSettings:
    """The named limits on documents, from `SWITCHBOARD_DOCUMENT_*` and `SWITCHBOARD_BUCKET`.

    - `max_upload_bytes`: a file sent in the request body (`POST /v1/documents`).
    - `max_presigned_bytes`: a file uploaded to a presigned S3 URL.
    - `max_pdf_pages`: pages of a PDF.
    - `max_text_chars`: characters of text extracted from one document.
    - `upload_url_seconds`: how long a presigned upload URL stays valid.
    """

    bucket: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_presigned_bytes: int = DEFAULT_MAX_PRESIGNED_BYTES
    max_pdf_pages: int = DEFAULT_MAX_PDF_PAGES
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    upload_url_seconds: int = DEFAULT_UPLOAD_URL_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DocumentSettings:
        settings = cls(
            bucket=env_optional(env, "SWITCHBOARD_BUCKET"),
            max_upload_bytes=env_int(
                env, "SWITCHBOARD_DOCUMENT_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES, minimum=1
            ),
            max_presigned_bytes=env_int(
                env,
                "SWITCHBOARD_DOCUMENT_MAX_PRESIGNED_BYTES",
                DEFAULT_MAX_PRESIGNED_BYTES,
                minimum=1,
            ),
            max_pdf_pages=env_int(
                env, "SWITCHBOARD_DOCUMENT_MAX_PDF_PAGES", DEFAULT_MAX_PDF_PAGES, minimum=1
            ),
            max_text_chars=env_int(
                env, "SWITCHBOARD_DOCUMENT_MAX_TEXT_CHARS", DEFAULT_MAX_TEXT_CHARS, minimum=1
            ),
            upload_url_seconds=env_int(
                env,
                "SWITCHBOARD_DOCUMENT_UPLOAD_URL_SECONDS",
                DEFAULT_UPLOAD_URL_SECONDS,
                minimum=60,
            ),
        )
        if settings.upload_url_seconds > 7 * 86400:
            raise ConfigError(
                "SWITCHBOARD_DOCUMENT_UPLOAD_URL_SECONDS must be at most 604800 (7 days), "
                "the longest S3 accepts for a presigned URL"
            )
        return settings

    @property
    def max_body_bytes(self) -> int:
        """The largest request body `POST /v1/documents` reads: the base64 of the largest
        file, and room for the JSON around it."""
        return 4 * math.ceil(self.max_upload_bytes / 3) + _BODY_OVERHEAD_BYTES

    def public(self) -> dict[str, int]:
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_presigned_bytes": self.max_presigned_bytes,
            "max_pdf_pages": self.max_pdf_pages,
            "max_text_chars": self.max_text_chars,
        }


@dataclass(frozen=True, slots=True)
class Document:
    id: str  # "doc_<hex>"
    tenant_id: str
    filename: str
    content_type: str
    kind: DocumentKind
    size_bytes: int
    pages: int | None  # PDFs
    folder: str  # "" at the root
    s3_key: str  # under the tenant's prefix: tenants/<tenant>/documents/...
    status: DocumentStatus
    created_at: int
    text_chars: int | None  # length of the extracted text (pdf/text/markdown)
    error: dict[str, Any] | None = None  # why a failed document failed: {"code", "message"}

    def public(self) -> dict[str, Any]:
        """The API shape: no S3 internals."""
        body: dict[str, Any] = {
            "id": self.id,
            "object": "document",
            "filename": self.filename,
            "content_type": self.content_type,
            "kind": self.kind,
            "size_bytes": self.size_bytes,
            "pages": self.pages,
            "folder": self.folder,
            "status": self.status,
            "created_at": self.created_at,
            "text_chars": self.text_chars,
        }
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(frozen=True, slots=True)
class Upload:
    """Where and how a client uploads a large file itself."""

    url: str
    headers: dict[str, str]
    expires_at: int
    method: str = "PUT"

    def public(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "method": self.method,
            "headers": self.headers,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True, slots=True)
class Extracted:
    kind: DocumentKind
    content_type: str
    text: str | None
    pages: int | None


def new_document_id() -> str:
    return "doc_" + secrets.token_hex(12)


def check_document_id(value: object, param: str = "document_id") -> str:
    if not isinstance(value, str) or not DOCUMENT_ID.match(value):
        raise NotFound(
            f"No document with id {str(value)[:80]!r}.", param=param, code="document_not_found"
        )
    return value


def check_kind(value: str | None) -> DocumentKind | None:
    if value is None:
        return None
    if value not in KINDS:
        raise InvalidRequest(
            f"'kind' must be one of {', '.join(KINDS)}; got {value[:40]!r}.",
            param="kind",
            code="invalid_value",
        )
    return value


def check_filename(value: object, param: str = "filename") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(
            "A document needs a 'filename' (a non-empty string).",
            param=param,
            code="missing_required_parameter" if value is None else "invalid_value",
        )
    name = value.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if not name or len(name) > MAX_FILENAME_CHARS or any(ord(c) < 32 for c in name):
        raise InvalidRequest(
            f"'filename' must be 1 to {MAX_FILENAME_CHARS} printable characters.",
            param=param,
            code="invalid_value",
        )
    return name


def check_content_type(value: object, param: str = "content_type") -> str:
    """A declared media type (`type/subtype`, parameters allowed), at most
    `MAX_CONTENT_TYPE_CHARS` printable ASCII characters; "" when none was declared. It is
    stored and signed into the upload URL, so it is bounded like any name."""
    if not isinstance(value, str):
        raise InvalidRequest("'content_type' must be a string.", param=param, code="invalid_value")
    declared = value.strip()
    if declared and (
        len(declared) > MAX_CONTENT_TYPE_CHARS
        or not declared.isascii()
        or not declared.isprintable()
        or not _MEDIA_TYPE.match(declared)
    ):
        raise InvalidRequest(
            f"'content_type' must be a media type such as 'application/pdf', at most "
            f"{MAX_CONTENT_TYPE_CHARS} printable ASCII characters; got {value[:80]!r}.",
            param=param,
            code="invalid_value",
        )
    return declared


def check_folder(value: object, param: str = "folder") -> str:
    """A folder path: segments of letters, digits, space, `_`, `.` and `-` (not starting
    with a dot), joined by `/`; "" is the root."""
    if not isinstance(value, str):
        raise InvalidRequest("'folder' must be a string.", param=param, code="invalid_value")
    folder = value.strip().strip("/")
    if not folder:
        return ""
    segments = [s.strip() for s in folder.split("/")]
    if (
        len(folder) > MAX_FOLDER_CHARS
        or len(segments) > MAX_FOLDER_DEPTH
        or not all(_FOLDER_SEGMENT.match(s) for s in segments)
    ):
        raise InvalidRequest(
            f"'folder' must be at most {MAX_FOLDER_DEPTH} '/'-separated names of letters, "
            f"digits, spaces, '_', '.' and '-' (each starting with a letter or digit), at "
            f"most {MAX_FOLDER_CHARS} characters in all; got {value[:80]!r}.",
            param=param,
            code="invalid_value",
        )
    return "/".join(segments)


def too_large(size: int, limit: int, how: str, *, param: str | None = None) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is {size} bytes; the limit for {how} is {limit} bytes.",
        param=param,
        code="document_too_large",
    )

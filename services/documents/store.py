"""Documents and assets: a tenant's files in S3, their records in the single table.

A document is a PDF, a plain-text or Markdown file, or an image (PNG, JPEG, GIF, WebP).
Its type is read from its first bytes, never from its name alone: a file that starts like
a PDF is a PDF, one that starts like a PNG is a PNG; a file that matches no signature is
text only if it was declared as text (`text/plain`, `text/markdown`, or a `.txt`/`.md`
name) and decodes as UTF-8. Everything else is refused with 415.

Text is extracted when the document is stored (pypdf for PDFs; text and Markdown as they
are) and kept as an S3 object of its own, so tools read it without parsing the file again.
Images are kept as images.

Keys: the document and cached vector items of the key layout in services/dynamo.py (every
key begins with the tenant, so isolation is structural, not a filter).

S3 objects (in `SWITCHBOARD_BUCKET`):
- the file: `tenants/<t>/documents/[<folder>/]<id>-<file name>`; `move` copies it into
  another folder and deletes the old object;
- its extracted text: `tenants/<t>/document-text/<id>.txt` (UTF-8), outside the
  documents tree so that a tenant's folders hold only their files.

Limits (`DocumentSettings`, from the environment) are enforced with errors a client can
act on: 413 for a file over the size limit, 415 for an unsupported type, 422 for a PDF
that is corrupt, encrypted or over the page limit, text that is not UTF-8, or extracted
text over the character limit. Never a 500 for a bad file.

The store is synchronous underneath (boto3, pypdf); its public methods are coroutines that
run the work in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import math
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

from services.config import ConfigError, env_int, env_optional
from services.dynamo import GSI1, Listing, attributes, conditional_failed, error_code, plain
from services.errors import (
    APIError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ToolFailed,
    UnsupportedMediaType,
)

log = logging.getLogger("switchboard.documents")

DocumentKind = Literal["pdf", "text", "markdown", "image"]
# A presigned upload's object carries this tag until the upload is completed;
# infra/stacks/stateful.py's lifecycle rule deletes one never completed.
PENDING_UPLOAD_TAG = ("switchboard-upload", "pending")
PENDING_UPLOAD_TAGGING = "=".join(PENDING_UPLOAD_TAG)
# A pending upload's record outlives its upload URL by this much, then the TTL deletes it.
PENDING_RECORD_GRACE_SECONDS = 86_400
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
_LIST_SORT_KEY = re.compile(r"[0-9]{15}#doc_[0-9a-f]{24}")
_FOLDER_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]*$")
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][\w!#$&^.+-]{0,126}/[A-Za-z0-9][\w!#$&^.+-]{0,126}(;.*)?$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._\-]+")

_IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
_CONTENT_TYPES: dict[str, str] = {"pdf": "application/pdf", "text": "text/plain",
                                  "markdown": "text/markdown"}  # fmt: skip
_TEXT_TYPES = {"text/plain": "text", "text/markdown": "markdown", "text/x-markdown": "markdown"}
_TEXT_EXTENSIONS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown"}


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


# -- type detection and text extraction ----------------------------------------------------


def sniff_image(data: bytes) -> str | None:
    """The image format from the file's signature, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _is_pdf(data: bytes) -> bool:
    # The header may follow some junk bytes; readers accept it within the first 1 KiB.
    return b"%PDF-" in data[:1024]


def _declared_text_kind(filename: str, content_type: str) -> DocumentKind | None:
    base = content_type.split(";")[0].strip().lower()
    if base in _TEXT_TYPES:
        return cast(DocumentKind, _TEXT_TYPES[base])
    dot = filename.rfind(".")
    extension = filename[dot:].lower() if dot != -1 else ""
    return cast("DocumentKind | None", _TEXT_EXTENSIONS.get(extension))


def extract(data: bytes, filename: str, content_type: str, settings: DocumentSettings) -> Extracted:
    """The document's kind, canonical content type, text and page count, or the 415/422
    that says why the file cannot be used."""
    if not data:
        raise InvalidRequest("The file is empty.", param="file", code="document_empty")
    if _is_pdf(data):
        text, pages = _pdf_text(data, settings)
        return Extracted("pdf", _CONTENT_TYPES["pdf"], _check_chars(text, settings), pages)
    image = sniff_image(data)
    if image is not None:
        return Extracted("image", _IMAGE_TYPES[image], None, None)
    kind = _declared_text_kind(filename, content_type)
    if kind is None:
        declared = content_type.split(";")[0].strip() or "no content type"
        raise UnsupportedMediaType(
            f"Unsupported document type ({declared}, {filename!r}): the content is not a "
            f"PDF, PNG, JPEG, GIF or WebP, and it was not declared as plain text or Markdown "
            f"(text/plain, text/markdown, or a .txt or .md name).",
            param="file",
            code="unsupported_document_type",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentRejected(
            f"The file is declared as text but is not valid UTF-8 (byte {exc.start}); "
            f"save it as UTF-8 and upload it again.",
            param="file",
            code="invalid_text_encoding",
        ) from None
    if "\x00" in text:
        raise DocumentRejected(
            "The file is declared as text but holds NUL bytes: it is binary, not text.",
            param="file",
            code="invalid_text_encoding",
        )
    return Extracted(kind, _CONTENT_TYPES[kind], _check_chars(text, settings), None)


def _check_chars(text: str, settings: DocumentSettings) -> str:
    if len(text) > settings.max_text_chars:
        raise DocumentRejected(
            f"The document holds {len(text)} characters of text; the limit is "
            f"{settings.max_text_chars}. Split it into smaller documents.",
            param="file",
            code="document_text_too_long",
        )
    return text


def _pdf_text(data: bytes, settings: DocumentSettings) -> tuple[str, int]:
    """The text of every page (pages separated by a blank line) and the page count."""
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    def corrupt(detail: str) -> DocumentRejected:
        return DocumentRejected(
            f"The PDF cannot be read: it is damaged or incomplete ({detail}).",
            param="file",
            code="pdf_corrupt",
        )

    def encrypted() -> DocumentRejected:
        return DocumentRejected(
            "The PDF is encrypted (password-protected); remove the password and upload it again.",
            param="file",
            code="pdf_encrypted",
        )

    # pypdf logs every oddity of a malformed file as a warning; the 422 says what matters.
    pypdf_log = logging.getLogger("pypdf")
    level = pypdf_log.level
    pypdf_log.setLevel(logging.ERROR)
    try:
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
        except (FileNotDecryptedError, DependencyError):
            raise encrypted() from None
        except Exception as exc:  # a malformed file can raise almost anything in a parser
            raise corrupt(_describe(exc)) from None
        if reader.is_encrypted:
            # A PDF with only an owner password opens with the empty user password.
            try:
                opened = reader.decrypt("")
            except Exception:
                raise encrypted() from None
            if opened == PasswordType.NOT_DECRYPTED:
                raise encrypted()
        try:
            count = len(reader.pages)
        except (FileNotDecryptedError, DependencyError):
            raise encrypted() from None
        except Exception as exc:
            raise corrupt(_describe(exc)) from None
        if count == 0:
            raise corrupt("it has no pages")
        if count > settings.max_pdf_pages:
            raise DocumentRejected(
                f"The PDF has {count} pages; the limit is {settings.max_pdf_pages}.",
                param="file",
                code="pdf_too_many_pages",
            )
        texts: list[str] = []
        chars = 0
        for number, page in enumerate(reader.pages, start=1):
            try:
                text = page.extract_text() or ""
            except (FileNotDecryptedError, DependencyError):
                raise encrypted() from None
            except Exception as exc:
                raise corrupt(f"page {number}: {_describe(exc)}") from None
            texts.append(text.strip())
            chars += len(texts[-1]) + 2
            if chars - 2 > settings.max_text_chars:
                break  # already too long: _check_chars refuses it without the other pages
        return "\n\n".join(texts), count
    finally:
        pypdf_log.setLevel(level)


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


# -- the store ------------------------------------------------------------------------------


class DocumentStore:
    """A tenant's documents: records in the table, files and extracted text in S3.

    Takes boto3 DynamoDB and S3 clients (tests pass moto's); when one is None, boto3's
    default client is built on first use, so a worker that stores no document needs no
    AWS. Every read and write is scoped to the caller's tenant by the key itself: another
    tenant's document id is simply not found (404). Without a bucket, every operation
    answers 503.
    """

    def __init__(
        self,
        dynamodb: Any,
        s3: Any,
        table: str,
        settings: DocumentSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dynamodb_client = dynamodb
        self._s3_client = s3
        self._clients_lock = threading.Lock()  # boto3 builds clients unsafely across threads
        self._table = table
        self.settings = settings or DocumentSettings()
        self._clock = clock

    @property
    def _ddb(self) -> Any:
        if self._dynamodb_client is None:
            with self._clients_lock:
                if self._dynamodb_client is None:
                    import boto3

                    self._dynamodb_client = boto3.client("dynamodb")
        return self._dynamodb_client

    @property
    def _s3(self) -> Any:
        if self._s3_client is None:
            with self._clients_lock:
                if self._s3_client is None:
                    import boto3
                    from botocore.config import Config

                    # SigV4, as presigned URLs for buckets in every region require.
                    self._s3_client = boto3.client("s3", config=Config(signature_version="s3v4"))
        return self._s3_client

    # -- keys -------------------------------------------------------------------------------

    @staticmethod
    def _pk(tenant: str, document_id: str) -> str:
        return f"TENANT#{tenant}#DOC#{document_id}"

    @staticmethod
    def _list_pk(tenant: str) -> str:
        return f"TENANT#{tenant}#DOCS"

    def listing(self, tenant: str) -> Listing:
        """The tenant's documents on `gsi1`, newest first."""
        return Listing(
            self._list_pk(tenant),
            _LIST_SORT_KEY,
            lambda sort_key: (self._pk(tenant, sort_key.partition("#")[2]), "META"),
        )

    @staticmethod
    def _object_key(tenant: str, folder: str, document_id: str, filename: str) -> str:
        safe = _UNSAFE_NAME.sub("_", filename).strip("._") or "file"
        prefix = f"tenants/{tenant}/documents/"
        return (
            f"{prefix}{folder}/{document_id}-{safe}" if folder else f"{prefix}{document_id}-{safe}"
        )

    @staticmethod
    def text_key(tenant: str, document_id: str) -> str:
        return f"tenants/{tenant}/document-text/{document_id}.txt"

    def _bucket(self) -> str:
        if self.settings.bucket is None:
            raise APIError(
                "Documents are not available: no bucket is configured (SWITCHBOARD_BUCKET).",
                status=503,
                type="server_error",
                code="documents_unavailable",
            )
        return self.settings.bucket

    # -- public API (async) -----------------------------------------------------------------

    async def put(
        self, tenant_id: str, filename: str, content_type: str, data: bytes, *, folder: str = ""
    ) -> Document:
        """Store a file sent in a request body: check it, extract its text, store both."""
        return await asyncio.to_thread(self.put_sync, tenant_id, filename, content_type, data,
                                       folder)  # fmt: skip

    async def create_upload(
        self,
        tenant_id: str,
        filename: str,
        content_type: str,
        *,
        size_bytes: int | None = None,
        folder: str = "",
    ) -> tuple[Document, Upload]:
        """A `pending_upload` document and a presigned S3 PUT URL for its file."""
        return await asyncio.to_thread(
            self.create_upload_sync, tenant_id, filename, content_type, size_bytes, folder
        )

    async def complete(self, tenant_id: str, document_id: str) -> Document:
        """Check and extract an uploaded file; the document becomes `ready`, or `failed`
        (with the reason, and the file deleted) while the 413/415/422 is raised."""
        return await asyncio.to_thread(self.complete_sync, tenant_id, document_id)

    async def get(self, tenant_id: str, document_id: str) -> Document:
        return await asyncio.to_thread(self.get_sync, tenant_id, document_id)

    async def list(
        self,
        tenant_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        kind: str | None = None,
    ) -> tuple[Documents, str | None]:
        """A page of the tenant's documents, newest first, and the cursor of the next page
        (None on the last)."""
        return await asyncio.to_thread(self.list_sync, tenant_id, limit, cursor, kind)

    async def all(self, tenant_id: str, *, kind: str | None = None) -> Documents:
        """Every document of the tenant (of `kind`), newest first."""

        def every() -> Documents:
            found: Documents = []
            cursor: str | None = None
            while True:
                page, cursor = self.list_sync(tenant_id, 100, cursor, kind)
                found.extend(page)
                if cursor is None:
                    return found

        return await asyncio.to_thread(every)

    async def text(self, tenant_id: str, document_id: str) -> str:
        """The document's extracted text; 422 (`ToolFailed`) for an image, 409 for a
        document that is not ready."""
        return await asyncio.to_thread(self.text_sync, tenant_id, document_id)

    async def content(self, tenant_id: str, document_id: str) -> bytes:
        """The file's bytes as stored."""
        return await asyncio.to_thread(self.content_sync, tenant_id, document_id)

    async def download_url(self, tenant_id: str, document_id: str, seconds: int = 300) -> str:
        """A presigned S3 GET URL for the file, valid for `seconds`."""
        return await asyncio.to_thread(self.download_url_sync, tenant_id, document_id, seconds)

    async def move(self, tenant_id: str, document_id: str, folder: str) -> Document:
        """Put the file in `folder` ("" is the root): S3 copy, record update, delete."""
        return await asyncio.to_thread(self.move_sync, tenant_id, document_id, folder)

    async def delete(self, tenant_id: str, document_id: str) -> None:
        """Remove the document: its S3 objects and every item of it."""
        await asyncio.to_thread(self.delete_sync, tenant_id, document_id)

    async def cached_vector(self, tenant_id: str, document_id: str, model: str) -> Vector | None:
        return await asyncio.to_thread(self.cached_vector_sync, tenant_id, document_id, model)

    async def store_vector(
        self, tenant_id: str, document_id: str, model: str, vector: Vector
    ) -> None:
        await asyncio.to_thread(self.store_vector_sync, tenant_id, document_id, model, vector)

    # -- the work (blocking) ----------------------------------------------------------------

    def put_sync(
        self, tenant_id: str, filename: str, content_type: str, data: bytes, folder: str = ""
    ) -> Document:
        bucket = self._bucket()
        filename = check_filename(filename)
        content_type = check_content_type(content_type)
        folder = check_folder(folder)
        limit = self.settings.max_upload_bytes
        if len(data) > limit:
            raise too_large(
                len(data),
                limit,
                "a file in the request body (use POST /v1/documents/uploads for larger files)",
                param="data",
            )
        extracted = extract(data, filename, content_type, self.settings)
        document_id = new_document_id()
        key = self._object_key(tenant_id, folder, document_id, filename)
        self._s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=extracted.content_type)
        if extracted.text is not None:
            self._put_text(bucket, tenant_id, document_id, extracted.text)
        document = Document(
            id=document_id,
            tenant_id=tenant_id,
            filename=filename,
            content_type=extracted.content_type,
            kind=extracted.kind,
            size_bytes=len(data),
            pages=extracted.pages,
            folder=folder,
            s3_key=key,
            status="ready",
            created_at=int(self._clock()),
            text_chars=len(extracted.text) if extracted.text is not None else None,
        )
        self._ddb.put_item(
            TableName=self._table,
            Item=self._item(document, created_ms=int(self._clock() * 1000)),
            ConditionExpression="attribute_not_exists(pk)",
        )
        return document

    def create_upload_sync(
        self,
        tenant_id: str,
        filename: str,
        content_type: str,
        size_bytes: int | None = None,
        folder: str = "",
    ) -> tuple[Document, Upload]:
        bucket = self._bucket()
        filename = check_filename(filename)
        folder = check_folder(folder)
        limit = self.settings.max_presigned_bytes
        if size_bytes is not None and size_bytes > limit:
            raise too_large(size_bytes, limit, "an uploaded file", param="size_bytes")
        content_type = check_content_type(content_type) or "application/octet-stream"
        now = self._clock()
        document_id = new_document_id()
        key = self._object_key(tenant_id, folder, document_id, filename)
        document = Document(
            id=document_id,
            tenant_id=tenant_id,
            filename=filename,
            content_type=content_type,
            kind=self._guess_kind(filename, content_type),
            size_bytes=size_bytes or 0,
            pages=None,
            folder=folder,
            s3_key=key,
            status="pending_upload",
            created_at=int(now),
            text_chars=None,
        )
        seconds = self.settings.upload_url_seconds
        url = self._s3.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": bucket,
                "Key": key,
                "ContentType": content_type,
                # Until completed, the object is pending: the bucket's lifecycle deletes
                # one never completed (infra/stacks/stateful.py).
                "Tagging": PENDING_UPLOAD_TAGGING,
            },
            ExpiresIn=seconds,
            HttpMethod="PUT",
        )
        # Swept if never completed: the table's TTL deletes the record a day after its
        # upload URL expires (completing or failing it removes the TTL), as the bucket's
        # lifecycle deletes the object.
        item = self._item(document, created_ms=int(now * 1000))
        item["expires_at"] = {"N": str(int(now) + seconds + PENDING_RECORD_GRACE_SECONDS)}
        self._ddb.put_item(
            TableName=self._table,
            Item=item,
            ConditionExpression="attribute_not_exists(pk)",
        )
        upload = Upload(
            url,
            {"content-type": content_type, "x-amz-tagging": PENDING_UPLOAD_TAGGING},
            int(now) + seconds,
        )
        return document, upload

    def complete_sync(self, tenant_id: str, document_id: str) -> Document:
        bucket = self._bucket()
        document = self.get_sync(tenant_id, document_id)
        if document.status == "ready":
            return document  # completing twice is harmless
        if document.status == "failed":
            reason = (document.error or {}).get("message", "")
            raise APIError(
                f"Document {document_id} failed and cannot be completed: {reason}",
                status=409,
                type="invalid_request_error",
                code="document_failed",
            )
        try:
            head = self._s3.head_object(Bucket=bucket, Key=document.s3_key)
        except Exception as exc:
            if _s3_missing(exc):
                raise APIError(
                    f"Nothing has been uploaded for document {document_id} yet: PUT the file "
                    f"to the upload URL, then complete it.",
                    status=409,
                    type="invalid_request_error",
                    code="upload_incomplete",
                ) from None
            raise
        size = int(head["ContentLength"])
        limit = self.settings.max_presigned_bytes
        try:
            if size > limit:
                raise too_large(size, limit, "an uploaded file")
            data = self._s3.get_object(Bucket=bucket, Key=document.s3_key)["Body"].read()
            extracted = extract(data, document.filename, document.content_type, self.settings)
        except APIError as error:
            self._fail(bucket, document, error)
            raise
        if extracted.text is not None:
            self._put_text(bucket, tenant_id, document_id, extracted.text)
        # No longer pending: the lifecycle rule for abandoned uploads must not take it.
        self._s3.delete_object_tagging(Bucket=bucket, Key=document.s3_key)
        ready = replace(
            document,
            kind=extracted.kind,
            content_type=extracted.content_type,
            size_bytes=size,
            pages=extracted.pages,
            status="ready",
            text_chars=len(extracted.text) if extracted.text is not None else None,
        )
        self._update(
            ready,
            condition="#status = :pending",
            values={":pending": "pending_upload"},
            conflict="The document was completed or deleted meanwhile.",
        )
        return ready

    def get_sync(self, tenant_id: str, document_id: str) -> Document:
        """The document, or 404 if it does not exist or is another tenant's."""
        check_document_id(document_id)
        response = self._ddb.get_item(
            TableName=self._table,
            Key=attributes({"pk": self._pk(tenant_id, document_id), "sk": "META"}),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            raise _not_found(document_id)
        return self._document(tenant_id, item)

    def list_sync(
        self, tenant_id: str, limit: int = 20, cursor: str | None = None, kind: str | None = None
    ) -> tuple[Documents, str | None]:
        if not 1 <= limit <= 100:
            raise InvalidRequest(
                "'limit' must be an integer from 1 to 100.", param="limit", code="invalid_value"
            )
        wanted = check_kind(kind)
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": GSI1,
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": attributes({":pk": self._list_pk(tenant_id)}),
            "ScanIndexForward": False,
        }
        if wanted is not None:
            params["FilterExpression"] = "#kind = :kind"
            params["ExpressionAttributeNames"] = {"#kind": "kind"}
            params["ExpressionAttributeValues"] |= attributes({":kind": wanted})
        if cursor is not None:
            params["ExclusiveStartKey"] = self.listing(tenant_id).start_key(cursor)
        found: list[dict[str, Any]] = []
        more = False
        while True:
            response = self._ddb.query(**params, Limit=limit + 1 - len(found))
            found.extend(response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if len(found) > limit:
                found, more = found[:limit], True
                break
            if not last:
                break
            params["ExclusiveStartKey"] = last
        documents: Documents = [self._document(tenant_id, item) for item in found]
        next_cursor = None
        if more and found:
            tail = found[-1]
            next_cursor = self.listing(tenant_id).cursor(tail["gsi1sk"]["S"])
        return documents, next_cursor

    def text_sync(self, tenant_id: str, document_id: str) -> str:
        document = self._ready(tenant_id, document_id)
        if document.kind == "image":
            raise ToolFailed(
                f"Document {document_id} ({document.filename}) is an image: it has no text.",
                param="document_id",
                code="document_has_no_text",
            )
        body = self._s3.get_object(
            Bucket=self._bucket(), Key=self.text_key(tenant_id, document_id)
        )["Body"].read()
        return str(body.decode())

    def content_sync(self, tenant_id: str, document_id: str) -> bytes:
        document = self._ready(tenant_id, document_id)
        body = self._s3.get_object(Bucket=self._bucket(), Key=document.s3_key)["Body"].read()
        return bytes(body)

    def download_url_sync(self, tenant_id: str, document_id: str, seconds: int = 300) -> str:
        document = self._ready(tenant_id, document_id)
        ascii_name = document.filename.encode("ascii", "replace").decode().replace('"', "'")
        url = self._s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket(),
                "Key": document.s3_key,
                "ResponseContentType": document.content_type,
                "ResponseContentDisposition": f'attachment; filename="{ascii_name}"',
            },
            ExpiresIn=seconds,
        )
        return str(url)

    def move_sync(self, tenant_id: str, document_id: str, folder: str) -> Document:
        bucket = self._bucket()
        folder = check_folder(folder)
        document = self._ready(tenant_id, document_id)
        key = self._object_key(tenant_id, folder, document_id, document.filename)
        if key == document.s3_key:
            return document
        self._s3.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": document.s3_key},
            ContentType=document.content_type,
            MetadataDirective="REPLACE",
        )
        moved = replace(document, folder=folder, s3_key=key)
        try:
            self._update(
                moved,
                condition="s3_key = :old",
                values={":old": document.s3_key},
                conflict="The document was moved or deleted meanwhile; read it and try again.",
            )
        except APIError:
            with contextlib.suppress(Exception):
                self._s3.delete_object(Bucket=bucket, Key=key)
            raise
        self._s3.delete_object(Bucket=bucket, Key=document.s3_key)
        return moved

    def delete_sync(self, tenant_id: str, document_id: str) -> None:
        bucket = self._bucket()
        document = self.get_sync(tenant_id, document_id)
        objects = [{"Key": document.s3_key}, {"Key": self.text_key(tenant_id, document_id)}]
        self._s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
        pk = self._pk(tenant_id, document_id)
        keys: list[dict[str, Any]] = []
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": attributes({":pk": pk}),
            "ProjectionExpression": "pk, sk",
            "ConsistentRead": True,
        }
        while True:
            response = self._ddb.query(**params)
            keys.extend({"pk": i["pk"], "sk": i["sk"]} for i in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        for start in range(0, len(keys), 25):
            requests = [{"DeleteRequest": {"Key": k}} for k in keys[start : start + 25]]
            for attempt in range(8):
                result = self._ddb.batch_write_item(RequestItems={self._table: requests})
                requests = result.get("UnprocessedItems", {}).get(self._table, [])
                if not requests:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise APIError("The document could not be deleted completely; try again.")

    def cached_vector_sync(self, tenant_id: str, document_id: str, model: str) -> Vector | None:
        response = self._ddb.get_item(
            TableName=self._table,
            Key=attributes({"pk": self._pk(tenant_id, document_id), "sk": f"EMB#{model}"}),
        )
        item = response.get("Item")
        if item is None:
            return None
        raw = plain(item)["vector"]
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))

    def store_vector_sync(
        self, tenant_id: str, document_id: str, model: str, vector: Vector
    ) -> None:
        """Keep `vector` with the document, if it still exists (a deleted document leaves
        no vector behind)."""
        pk = self._pk(tenant_id, document_id)
        packed = struct.pack(f"<{len(vector)}f", *vector)
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": attributes({"pk": pk, "sk": "META"}),
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": attributes(
                                {
                                    "pk": pk,
                                    "sk": f"EMB#{model}",
                                    "model": model,
                                    "dimensions": len(vector),
                                    "vector": packed,
                                }
                            ),
                        }
                    },
                ]
            )
        except Exception as exc:
            if conditional_failed(exc):
                raise _not_found(document_id) from None
            raise

    # -- helpers ----------------------------------------------------------------------------

    def _ready(self, tenant_id: str, document_id: str) -> Document:
        document = self.get_sync(tenant_id, document_id)
        if document.status != "ready":
            raise APIError(
                f"Document {document_id} is {document.status.replace('_', ' ')}, not ready.",
                status=409,
                type="invalid_request_error",
                code="document_not_ready",
            )
        return document

    def _put_text(self, bucket: str, tenant_id: str, document_id: str, text: str) -> None:
        self._s3.put_object(
            Bucket=bucket,
            Key=self.text_key(tenant_id, document_id),
            Body=text.encode(),
            ContentType="text/plain; charset=utf-8",
        )

    def _fail(self, bucket: str, document: Document, error: APIError) -> None:
        """Mark an upload failed with its reason, and drop the file it left in S3."""
        failed = replace(
            document, status="failed", error={"code": error.code, "message": error.message}
        )
        with contextlib.suppress(Exception):
            self._update(failed, condition="#status = :pending",
                         values={":pending": "pending_upload"}, conflict="")  # fmt: skip
        with contextlib.suppress(Exception):
            self._s3.delete_object(Bucket=bucket, Key=document.s3_key)

    def _update(
        self, document: Document, *, condition: str, values: dict[str, Any], conflict: str
    ) -> None:
        item = self._item(document)
        names = {f"#{k}": k for k in item if k not in ("pk", "sk", "gsi1pk", "gsi1sk")}
        sets = ", ".join(f"#{k} = :v_{k}" for k in item if f"#{k}" in names)
        removes = [f"#{k}" for k in ("pages", "text_chars", "error") if k not in item]
        if document.status != "pending_upload":
            removes.append("#expires_at")  # no longer an upload to sweep
        names.update({r: r[1:] for r in removes})
        names["#status"] = "status"
        expression = f"SET {sets}" + (f" REMOVE {', '.join(removes)}" if removes else "")
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(pk) AND {condition}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    **{f":v_{k}": v for k, v in item.items() if f"#{k}" in names},
                    **attributes(values),
                },
            )
        except Exception as exc:
            if conditional_failed(exc):
                raise APIError(conflict, status=409, type="invalid_request_error",
                               code="document_conflict") from None  # fmt: skip
            raise

    def _item(self, document: Document, *, created_ms: int | None = None) -> dict[str, Any]:
        listed = created_ms is not None
        return attributes(
            {
                "pk": self._pk(document.tenant_id, document.id),
                "sk": "META",
                "gsi1pk": self._list_pk(document.tenant_id) if listed else None,
                "gsi1sk": f"{created_ms:015d}#{document.id}" if listed else None,
                "id": document.id,
                "filename": document.filename,
                "content_type": document.content_type,
                "kind": document.kind,
                "size_bytes": document.size_bytes,
                "folder": document.folder,
                "s3_key": document.s3_key,
                "status": document.status,
                "created_at": document.created_at,
                "pages": document.pages,
                "text_chars": document.text_chars,
                "error": None if document.error is None else json.dumps(document.error),
            }
        )

    def _document(self, tenant_id: str, item: dict[str, Any]) -> Document:
        v = plain(item)
        return Document(
            id=v["id"],
            tenant_id=tenant_id,
            filename=v["filename"],
            content_type=v["content_type"],
            kind=cast(DocumentKind, v["kind"]),
            size_bytes=int(v["size_bytes"]),
            pages=int(v["pages"]) if "pages" in v else None,
            folder=v["folder"],
            s3_key=v["s3_key"],
            status=cast(DocumentStatus, v["status"]),
            created_at=int(v["created_at"]),
            text_chars=int(v["text_chars"]) if "text_chars" in v else None,
            error=json.loads(v["error"]) if "error" in v else None,
        )

    @staticmethod
    def _guess_kind(filename: str, content_type: str) -> DocumentKind:
        """What a pending upload claims to be; the file's own bytes decide at completion."""
        base = content_type.split(";")[0].strip().lower()
        if base == "application/pdf" or filename.lower().endswith(".pdf"):
            return "pdf"
        if base.startswith("image/"):
            return "image"
        return _declared_text_kind(filename, content_type) or "text"


def _not_found(document_id: str) -> NotFound:
    return NotFound(
        f"No document with id {document_id!r}.", param="document_id", code="document_not_found"
    )


def _s3_missing(exc: Exception) -> bool:
    return error_code(exc) in ("404", "NoSuchKey", "NotFound")


def build_store(table: str, settings: DocumentSettings) -> DocumentStore:
    """The store on boto3's default clients, built on first use (the worker's task role
    in AWS; moto in the local stack)."""
    return DocumentStore(None, None, table, settings)

"""What a file is, and its text: the type is read from the file's first bytes, never from
its name alone (a file that starts like a PDF is a PDF, one that starts like a PNG is a
PNG); a file that matches no signature is text only if it was declared as text
(`text/plain`, `text/markdown`, or a `.txt`/`.md` name) and decodes as UTF-8. Everything
else is refused with 415. PDFs are read with pypdf (imported on first use); a file that
cannot be used is a 422 saying why, never a 500.

Blocking (pypdf is CPU work): the store runs it off the event loop.
"""

from __future__ import annotations

import io
import logging
from typing import cast

from services.documents.model import DocumentKind, DocumentRejected, DocumentSettings, Extracted
from services.errors import InvalidRequest, UnsupportedMediaType

_IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
_CONTENT_TYPES: dict[str, str] = {"pdf": "application/pdf", "text": "text/plain",
                                  "markdown": "text/markdown"}  # fmt: skip
_TEXT_TYPES = {"text/plain": "text", "text/markdown": "markdown", "text/x-markdown": "markdown"}
_TEXT_EXTENSIONS = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown"}


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


def declared_text_kind(filename: str, content_type: str) -> DocumentKind | None:
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
    kind = declared_text_kind(filename, content_type)
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

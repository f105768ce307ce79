"""The document store against moto: type detection, text extraction, every limit and its
error, tenant isolation, paging, presigned uploads, moves and deletes."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import boto3
import pytest
from moto import mock_aws

from devstack.tables import create_table
from services.config import ConfigError
from services.documents.store import (
    Document,
    DocumentRejected,
    DocumentSettings,
    DocumentStore,
    extract,
    sniff_image,
)
from services.errors import (
    APIError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from services.tools.base import ToolFailed
from tests.pdf import encrypt_pdf, make_pdf

TABLE = "switchboard-test"
BUCKET = "switchboard-test-bucket"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
GIF = b"GIF89a" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 32

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        self.now += 0.001  # every document gets its own creation time
        return self.now


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        s3.create_bucket(Bucket=BUCKET)
        yield {"dynamodb": dynamodb, "s3": s3}


SETTINGS = DocumentSettings(
    bucket=BUCKET,
    max_upload_bytes=64 * 1024,
    max_presigned_bytes=128 * 1024,
    max_pdf_pages=5,
    max_text_chars=10_000,
)


@pytest.fixture
def store(aws: dict[str, Any]) -> DocumentStore:
    return DocumentStore(aws["dynamodb"], aws["s3"], TABLE, SETTINGS, clock=Clock())


def keys(aws: dict[str, Any], prefix: str = "tenants/") -> list[str]:
    listed = aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


# -- detection and extraction --------------------------------------------------------------


def test_a_multi_page_pdf_gives_its_text_and_page_count() -> None:
    data = make_pdf(["Quarterly report\nRevenue grew", "Page two: costs", "Page three"])
    found = extract(data, "report.pdf", "application/pdf", SETTINGS)
    assert (found.kind, found.content_type, found.pages) == ("pdf", "application/pdf", 3)
    assert found.text is not None
    assert "Revenue grew" in found.text and "Page two: costs" in found.text
    assert found.text.index("Quarterly") < found.text.index("Page three")


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")],
)
def test_images_are_known_by_their_bytes_not_their_name(data: bytes, content_type: str) -> None:
    found = extract(data, "notes.txt", "text/plain", SETTINGS)
    assert (found.kind, found.content_type, found.text) == ("image", content_type, None)


def test_a_pdf_named_as_an_image_is_a_pdf() -> None:
    found = extract(make_pdf(["x"]), "photo.png", "image/png", SETTINGS)
    assert found.kind == "pdf"


def test_text_and_markdown_by_declared_type_or_extension() -> None:
    assert extract(b"hello", "a.txt", "", SETTINGS).kind == "text"
    assert extract(b"# Title", "a.md", "application/octet-stream", SETTINGS).kind == "markdown"
    found = extract("\ufeffcafé".encode(), "x", "text/markdown; charset=utf-8", SETTINGS)
    assert (found.kind, found.content_type, found.text) == ("markdown", "text/markdown", "café")


def test_an_image_declared_but_not_an_image_is_415() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        extract(b"not really a png", "x.png", "image/png", SETTINGS)
    assert caught.value.status == 415 and caught.value.code == "unsupported_document_type"


def test_an_unknown_binary_type_is_415() -> None:
    with pytest.raises(UnsupportedMediaType):
        extract(b"PK\x03\x04zipfile", "a.zip", "application/zip", SETTINGS)


def test_text_that_is_not_utf8_is_422() -> None:
    with pytest.raises(DocumentRejected) as caught:
        extract(b"caf\xe9 latin-1", "a.txt", "text/plain", SETTINGS)
    assert caught.value.status == 422 and caught.value.code == "invalid_text_encoding"
    with pytest.raises(DocumentRejected):
        extract(b"a\x00b", "a.txt", "text/plain", SETTINGS)


def test_a_truncated_pdf_is_422_corrupt() -> None:
    data = make_pdf(["one", "two"])
    for cut in (len(data) // 2, len(data) - 40, 20):
        with pytest.raises(DocumentRejected) as caught:
            extract(data[:cut], "a.pdf", "application/pdf", SETTINGS)
        assert caught.value.status == 422 and caught.value.code == "pdf_corrupt"


def test_an_encrypted_pdf_is_422() -> None:
    with pytest.raises(DocumentRejected) as caught:
        extract(encrypt_pdf(make_pdf(["secret"])), "a.pdf", "application/pdf", SETTINGS)
    assert caught.value.status == 422 and caught.value.code == "pdf_encrypted"


def test_a_pdf_with_only_an_owner_password_opens() -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["open to read"]))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    found = extract(buffer.getvalue(), "a.pdf", "application/pdf", SETTINGS)
    assert found.text == "open to read"


def test_a_pdf_over_the_page_limit_is_422() -> None:
    with pytest.raises(DocumentRejected) as caught:
        extract(make_pdf([f"p{i}" for i in range(6)]), "a.pdf", "", SETTINGS)
    assert caught.value.code == "pdf_too_many_pages"
    assert "6 pages" in caught.value.message and "5" in caught.value.message
    assert extract(make_pdf([f"p{i}" for i in range(5)]), "a.pdf", "", SETTINGS).pages == 5


def test_text_over_the_character_limit_is_422() -> None:
    with pytest.raises(DocumentRejected) as caught:
        extract(b"x" * 10_001, "a.txt", "text/plain", SETTINGS)
    assert caught.value.code == "document_text_too_long"
    with pytest.raises(DocumentRejected):
        extract(make_pdf(["word " * 1000] * 3), "a.pdf", "", SETTINGS)


def test_an_empty_file_is_400() -> None:
    with pytest.raises(InvalidRequest) as caught:
        extract(b"", "a.txt", "text/plain", SETTINGS)
    assert caught.value.code == "document_empty"


def test_sniff_image() -> None:
    assert sniff_image(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert sniff_image(PNG) == "png"


# -- settings --------------------------------------------------------------------------------


def test_settings_from_env() -> None:
    settings = DocumentSettings.from_env(
        {
            "SWITCHBOARD_BUCKET": "b",
            "SWITCHBOARD_DOCUMENT_MAX_UPLOAD_BYTES": "3000",
            "SWITCHBOARD_DOCUMENT_MAX_PDF_PAGES": "7",
        }
    )
    assert (settings.bucket, settings.max_upload_bytes, settings.max_pdf_pages) == ("b", 3000, 7)
    assert settings.max_body_bytes == 4000 + 64 * 1024  # base64 of 3000 bytes, and room
    with pytest.raises(ConfigError, match="SWITCHBOARD_DOCUMENT_MAX_TEXT_CHARS"):
        DocumentSettings.from_env({"SWITCHBOARD_DOCUMENT_MAX_TEXT_CHARS": "many"})


def test_the_default_body_limit_fits_a_lambda_invocation() -> None:
    # Lambda's synchronous payload limit is 6 MB; the proxy event adds headers around it.
    assert DocumentSettings().max_body_bytes < 6_000_000


# -- the store -------------------------------------------------------------------------------


def test_put_stores_the_file_and_its_text(store: DocumentStore, aws: dict[str, Any]) -> None:
    doc = run(store.put("acme", "Q3 report.pdf", "application/pdf", make_pdf(["Alpha", "Beta"])))
    assert doc.id.startswith("doc_") and doc.status == "ready"
    assert (doc.kind, doc.pages, doc.folder, doc.text_chars) == ("pdf", 2, "", len("Alpha\n\nBeta"))
    assert doc.s3_key == f"tenants/acme/documents/{doc.id}-Q3_report.pdf"
    assert keys(aws) == sorted([doc.s3_key, f"tenants/acme/document-text/{doc.id}.txt"])
    assert run(store.text("acme", doc.id)) == "Alpha\n\nBeta"
    assert run(store.content("acme", doc.id)) == make_pdf(["Alpha", "Beta"])
    assert run(store.get("acme", doc.id)) == doc
    public = doc.public()
    assert public["object"] == "document" and "s3_key" not in public and "tenant_id" not in public


def test_put_over_the_body_limit_is_413(store: DocumentStore, aws: dict[str, Any]) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        run(store.put("acme", "big.txt", "text/plain", b"x" * (64 * 1024 + 1)))
    assert caught.value.status == 413 and caught.value.code == "document_too_large"
    assert "/v1/documents/uploads" in caught.value.message
    assert keys(aws) == []


def test_a_refused_file_stores_nothing(store: DocumentStore, aws: dict[str, Any]) -> None:
    with pytest.raises(DocumentRejected):
        run(store.put("acme", "a.pdf", "application/pdf", make_pdf(["x"])[:100]))
    assert keys(aws) == []
    assert run(store.list("acme")) == ([], None)


def test_images_have_no_text(store: DocumentStore) -> None:
    doc = run(store.put("acme", "cat.png", "image/png", PNG))
    assert (doc.kind, doc.text_chars, doc.content_type) == ("image", None, "image/png")
    with pytest.raises(ToolFailed) as caught:
        run(store.text("acme", doc.id))
    assert caught.value.status == 422 and caught.value.code == "document_has_no_text"
    assert run(store.content("acme", doc.id)) == PNG


def test_another_tenants_document_is_not_found(store: DocumentStore) -> None:
    doc = run(store.put("acme", "a.txt", "text/plain", b"private"))
    for call in (store.get, store.text, store.content, store.delete):
        with pytest.raises(NotFound):
            run(call("globex", doc.id))
    with pytest.raises(NotFound):
        run(store.move("globex", doc.id, "stolen"))
    assert run(store.list("globex")) == ([], None)
    assert run(store.text("acme", doc.id)) == "private"


def test_malformed_ids_are_not_found(store: DocumentStore) -> None:
    for bad in ("doc_zz", "../x", "", "doc_" + "0" * 24 + "#META"):
        with pytest.raises(NotFound):
            run(store.get("acme", bad))


def test_list_pages_newest_first_with_a_kind_filter(store: DocumentStore) -> None:
    made = [run(store.put("acme", f"n{i}.txt", "text/plain", b"t%d" % i)) for i in range(5)]
    made += [run(store.put("acme", f"p{i}.png", "image/png", PNG)) for i in range(3)]
    run(store.put("other", "x.txt", "text/plain", b"other tenant"))
    newest_first = [d.id for d in reversed(made)]
    page, cursor = run(store.list("acme", limit=3))
    seen = [d.id for d in page]
    while cursor is not None:
        page, cursor = run(store.list("acme", limit=3, cursor=cursor))
        seen += [d.id for d in page]
    assert seen == newest_first
    texts, cursor = run(store.list("acme", limit=2, kind="text"))
    assert [d.kind for d in texts] == ["text", "text"] and cursor is not None
    rest, cursor = run(store.list("acme", limit=10, kind="text", cursor=cursor))
    assert len(rest) == 3 and cursor is None
    assert [d.id for d in run(store.all("acme", kind="image"))] == newest_first[:3]
    assert len(run(store.all("acme"))) == 8


def test_list_refuses_bad_arguments_and_foreign_cursors(store: DocumentStore) -> None:
    for i in range(3):
        run(store.put("acme", f"n{i}.txt", "text/plain", b"t"))
        run(store.put("globex", f"n{i}.txt", "text/plain", b"t"))
    _, cursor = run(store.list("acme", limit=1))
    assert cursor is not None
    with pytest.raises(InvalidRequest) as caught:
        run(store.list("globex", cursor=cursor))
    assert caught.value.code == "invalid_cursor"
    with pytest.raises(InvalidRequest):
        run(store.list("acme", cursor="not-a-cursor"))
    with pytest.raises(InvalidRequest) as caught:
        run(store.list("acme", kind="video"))
    assert caught.value.param == "kind"
    with pytest.raises(InvalidRequest):
        run(store.list("acme", limit=0))


def test_move_copies_into_the_folder_and_deletes_the_old_object(
    store: DocumentStore, aws: dict[str, Any]
) -> None:
    doc = run(store.put("acme", "beach.png", "image/png", PNG))
    moved = run(store.move("acme", doc.id, "Holidays/2024"))
    assert moved.folder == "Holidays/2024"
    assert moved.s3_key == f"tenants/acme/documents/Holidays/2024/{doc.id}-beach.png"
    assert keys(aws, "tenants/acme/documents/") == [moved.s3_key]
    assert run(store.get("acme", doc.id)) == moved
    assert run(store.content("acme", doc.id)) == PNG
    back = run(store.move("acme", doc.id, "/"))
    assert back.folder == "" and keys(aws, "tenants/acme/documents/") == [doc.s3_key]
    assert run(store.move("acme", doc.id, "")) == back  # already there: nothing to do


def test_a_text_document_moves_and_keeps_its_text(store: DocumentStore) -> None:
    doc = run(store.put("acme", "notes.md", "text/markdown", b"# Notes"))
    run(store.move("acme", doc.id, "Work"))
    assert run(store.text("acme", doc.id)) == "# Notes"


@pytest.mark.parametrize("folder", ["../up", "a//b", ".hidden", "a/" * 9 + "a", "x" * 201, "a\tb"])
def test_bad_folders_are_400(store: DocumentStore, folder: str) -> None:
    doc = run(store.put("acme", "a.txt", "text/plain", b"x"))
    with pytest.raises(InvalidRequest) as caught:
        run(store.move("acme", doc.id, folder))
    assert caught.value.param == "folder"


def test_delete_removes_objects_items_and_vectors(
    store: DocumentStore, aws: dict[str, Any]
) -> None:
    doc = run(store.put("acme", "a.txt", "text/plain", b"hello"))
    run(store.store_vector("acme", doc.id, "local/embedding", [0.5, -0.25]))
    assert run(store.cached_vector("acme", doc.id, "local/embedding")) == [0.5, -0.25]
    run(store.delete("acme", doc.id))
    assert keys(aws) == []
    assert aws["dynamodb"].scan(TableName=TABLE)["Items"] == []
    with pytest.raises(NotFound):
        run(store.get("acme", doc.id))
    with pytest.raises(NotFound):
        run(store.store_vector("acme", doc.id, "local/embedding", [1.0]))


def test_without_a_bucket_documents_are_503(aws: dict[str, Any]) -> None:
    store = DocumentStore(aws["dynamodb"], aws["s3"], TABLE, DocumentSettings(bucket=None))
    with pytest.raises(APIError) as caught:
        run(store.put("acme", "a.txt", "text/plain", b"x"))
    assert caught.value.status == 503 and caught.value.code == "documents_unavailable"


# -- presigned uploads ---------------------------------------------------------------------


def upload(aws: dict[str, Any], doc: Document, data: bytes) -> None:
    """What the client's PUT to the presigned URL does (moto's decorator has no server):
    the URL is signed with the pending tag, so the object arrives tagged."""
    aws["s3"].put_object(
        Bucket=BUCKET, Key=doc.s3_key, Body=data, Tagging="switchboard-upload=pending"
    )


def tags(aws: dict[str, Any], key: str) -> dict[str, str]:
    found = aws["s3"].get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]
    return {t["Key"]: t["Value"] for t in found}


def test_presigned_upload_then_complete(store: DocumentStore, aws: dict[str, Any]) -> None:
    doc, up = run(store.create_upload("acme", "big.pdf", "application/pdf", size_bytes=2000))
    assert doc.status == "pending_upload" and doc.kind == "pdf"
    # The upload is tagged pending (signed into the URL): the bucket's lifecycle deletes an
    # upload never completed, and completing removes the tag.
    assert up.method == "PUT" and up.headers == {
        "content-type": "application/pdf",
        "x-amz-tagging": "switchboard-upload=pending",
    }
    assert BUCKET in up.url and doc.id in up.url and "Signature" in up.url
    assert "x-amz-tagging" in up.url.lower()
    with pytest.raises(APIError) as caught:
        run(store.complete("acme", doc.id))
    assert caught.value.status == 409 and caught.value.code == "upload_incomplete"
    with pytest.raises(APIError) as caught:
        run(store.text("acme", doc.id))
    assert caught.value.code == "document_not_ready"
    data = make_pdf(["Large", "upload", "works"])
    # The pending record expires (table TTL) a day after its upload URL; completing keeps it.
    record = aws["dynamodb"].scan(TableName=TABLE)["Items"]
    (pending,) = [i for i in record if i.get("status", {}).get("S") == "pending_upload"]
    assert int(pending["expires_at"]["N"]) == doc.created_at + SETTINGS.upload_url_seconds + 86_400
    upload(aws, doc, data)
    assert tags(aws, doc.s3_key) == {"switchboard-upload": "pending"}
    ready = run(store.complete("acme", doc.id))
    assert (ready.status, ready.pages, ready.size_bytes) == ("ready", 3, len(data))
    assert tags(aws, doc.s3_key) == {}
    (completed,) = [
        i for i in aws["dynamodb"].scan(TableName=TABLE)["Items"] if i["sk"]["S"] == "META"
    ]
    assert "expires_at" not in completed
    assert run(store.text("acme", doc.id)) == "Large\n\nupload\n\nworks"
    assert run(store.complete("acme", doc.id)) == ready  # twice is harmless
    assert run(store.get("acme", doc.id)) == ready


def test_a_declared_size_over_the_limit_is_413_at_once(store: DocumentStore) -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        run(store.create_upload("acme", "big.pdf", "application/pdf", size_bytes=128 * 1024 + 1))
    assert caught.value.param == "size_bytes"
    assert run(store.list("acme")) == ([], None)


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"x" * (128 * 1024 + 1), 413, "document_too_large"),
        (b"PK\x03\x04zip", 415, "unsupported_document_type"),
        (make_pdf(["a", "b"])[:300], 422, "pdf_corrupt"),
        (encrypt_pdf(make_pdf(["a"])), 422, "pdf_encrypted"),
        (make_pdf(["p"] * 6), 422, "pdf_too_many_pages"),
    ],
)
def test_a_bad_upload_fails_with_its_reason(
    store: DocumentStore, aws: dict[str, Any], data: bytes, status: int, code: str
) -> None:
    doc, _ = run(store.create_upload("acme", "f.pdf", "application/pdf"))
    upload(aws, doc, data)
    with pytest.raises(APIError) as caught:
        run(store.complete("acme", doc.id))
    assert (caught.value.status, caught.value.code) == (status, code)
    failed = run(store.get("acme", doc.id))
    assert failed.status == "failed"
    assert failed.error is not None and failed.error["code"] == code
    assert failed.public()["error"]["code"] == code
    assert keys(aws) == []  # the bad file is not kept
    with pytest.raises(APIError) as again:
        run(store.complete("acme", doc.id))
    assert again.value.status == 409 and again.value.code == "document_failed"
    run(store.delete("acme", doc.id))


@pytest.mark.parametrize(
    "content_type",
    ["text/" + "x" * 500_000, "a" * 300, "not a media type", "text/plain\x00", "t\u00e9xt/plain"],
    ids=["500-kb", "300-chars", "no-slash", "nul", "non-ascii"],
)
def test_a_declared_content_type_is_bounded_and_nothing_is_stored(
    store: DocumentStore, aws: dict[str, Any], content_type: str
) -> None:
    """It is stored and signed into the upload URL: a 500 KB one was a 500 (issue 15)."""
    for call in (
        lambda: store.create_upload("acme", "a.txt", content_type),
        lambda: store.put("acme", "a.txt", content_type, b"hello"),
    ):
        with pytest.raises(InvalidRequest) as caught:
            run(call())
        assert (caught.value.status, caught.value.param) == (400, "content_type")
        assert len(caught.value.json()) < 1_000
    assert run(store.list("acme"))[0] == [] and keys(aws) == []


def test_a_declared_content_type_with_parameters_is_kept(store: DocumentStore) -> None:
    document, upload = run(store.create_upload("acme", "a.md", " text/markdown; charset=utf-8 "))
    assert document.content_type == upload.headers["content-type"] == "text/markdown; charset=utf-8"

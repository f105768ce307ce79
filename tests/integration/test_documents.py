"""Documents and embeddings through the front doors, on a local stack of their own with
small document limits: uploads in the body and through a presigned S3 URL (PUT to moto
over loopback), read, list, download, delete, every refusal with its status and code,
tenant isolation, and the openai SDK's `embeddings.create`."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from devstack.stack import LocalStack, StackConfig
from services.tenancy.keys import KeyStore
from tests.integration.doors import api_and_stream
from tests.pdf import encrypt_pdf, make_pdf

MAX_UPLOAD = 96 * 1024  # its base64 is more than the 64 KiB limit of other requests
MAX_PRESIGNED = 512 * 1024
MAX_PAGES = 5
MAX_TEXT = 20_000
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    config = StackConfig(
        max_request_bytes=64 * 1024,
        log_dir=tmp_path_factory.mktemp("documents-stack-logs"),
        extra_env={
            "SWITCHBOARD_DOCUMENT_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
            "SWITCHBOARD_DOCUMENT_MAX_PRESIGNED_BYTES": str(MAX_PRESIGNED),
            "SWITCHBOARD_DOCUMENT_MAX_PDF_PAGES": str(MAX_PAGES),
            "SWITCHBOARD_DOCUMENT_MAX_TEXT_CHARS": str(MAX_TEXT),
        },
    )
    with LocalStack(config) as running:
        yield running


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def new_key(stack: LocalStack, tenant: str) -> str:
    return KeyStore(stack.client("dynamodb"), stack.config.table).create(tenant).secret


def upload(
    stack: LocalStack, filename: str, data: bytes, content_type: str = "", *, url: str = ""
) -> httpx.Response:
    body: dict[str, Any] = {"filename": filename, "data": base64.b64encode(data).decode()}
    if content_type:
        body["content_type"] = content_type
    return httpx.post(
        f"{url or stack.stream_url}/documents", json=body, headers=auth(stack.api_key), timeout=30
    )


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    return error


def s3_keys(stack: LocalStack, prefix: str) -> list[str]:
    listed = stack.client("s3").list_objects_v2(Bucket=stack.config.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


# -- small files in the body ---------------------------------------------------------------


@pytest.mark.parametrize("door", api_and_stream())
def test_upload_read_list_download_and_delete(stack: LocalStack, door: str) -> None:
    url = stack.api_url if door == "api" else stack.stream_url
    pdf = make_pdf(["Annual report", "Revenue grew", "Outlook"])
    response = upload(stack, "annual report.pdf", pdf, "application/pdf", url=url)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["object"] == "document" and doc["id"].startswith("doc_")
    assert (doc["kind"], doc["pages"], doc["status"], doc["size_bytes"]) == (
        "pdf",
        3,
        "ready",
        len(pdf),
    )
    assert doc["text_chars"] == len("Annual report\n\nRevenue grew\n\nOutlook")
    assert "s3_key" not in doc
    headers = auth(stack.api_key)
    got = httpx.get(f"{url}/documents/{doc['id']}", headers=headers)
    assert got.status_code == 200 and got.json() == doc
    listed = httpx.get(f"{url}/documents", params={"kind": "pdf", "limit": 100}, headers=headers)
    assert doc["id"] in [d["id"] for d in listed.json()["data"]]
    download = httpx.get(f"{url}/documents/{doc['id']}/content", headers=headers)
    assert download.status_code == 307
    s3 = httpx.get(download.headers["location"])  # a presigned URL: no API key
    assert s3.status_code == 200 and s3.content == pdf
    assert s3.headers["content-type"] == "application/pdf"
    prefix = f"tenants/dev/documents/{doc['id']}"
    assert s3_keys(stack, prefix) == [f"{prefix}-annual_report.pdf"]
    deleted = httpx.delete(f"{url}/documents/{doc['id']}", headers=headers)
    assert deleted.json() == {"id": doc["id"], "object": "document.deleted", "deleted": True}
    assert s3_keys(stack, prefix) == []
    assert s3_keys(stack, f"tenants/dev/document-text/{doc['id']}") == []
    assert_error(httpx.get(f"{url}/documents/{doc['id']}", headers=headers), 404,
                 "document_not_found")  # fmt: skip


def test_text_markdown_and_images(stack: LocalStack) -> None:
    text = upload(stack, "notes.txt", "Grüße, world".encode(), "text/plain").json()
    assert (text["kind"], text["content_type"], text["text_chars"]) == ("text", "text/plain", 12)
    markdown = upload(stack, "README.md", b"# Title\n\nBody").json()
    assert markdown["kind"] == "markdown"
    image = upload(stack, "holiday.jpg", PNG, "image/jpeg").json()  # the bytes say PNG
    assert (image["kind"], image["content_type"], image["text_chars"]) == (
        "image",
        "image/png",
        None,
    )


def test_the_list_pages_with_a_cursor(stack: LocalStack) -> None:
    key = new_key(stack, "pager")
    ids = []
    for i in range(5):
        body = {"filename": f"n{i}.txt", "data": base64.b64encode(b"note %d" % i).decode()}
        ids.append(
            httpx.post(f"{stack.stream_url}/documents", json=body, headers=auth(key)).json()["id"]
        )
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = httpx.get(f"{stack.stream_url}/documents", params=params, headers=auth(key)).json()
        seen += [d["id"] for d in page["data"]]
        if not page["has_more"]:
            break
        params["after"] = page["next_cursor"]
    assert seen == ids[::-1]
    assert_error(
        httpx.get(f"{stack.stream_url}/documents", params={"limit": 0}, headers=auth(key)),
        400,
        "invalid_value",
    )
    assert_error(
        httpx.get(f"{stack.stream_url}/documents", params={"kind": "video"}, headers=auth(key)),
        400,
        "invalid_value",
    )
    assert_error(
        httpx.get(f"{stack.stream_url}/documents", params={"after": "junk"}, headers=auth(key)),
        400,
        "invalid_cursor",
    )


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "data", "content_type", "status", "code"),
    [
        ("big.txt", b"x" * (MAX_UPLOAD + 1), "text/plain", 413, "document_too_large"),
        ("archive.zip", b"PK\x03\x04 a zip file", "application/zip", 415,
         "unsupported_document_type"),
        ("fake.png", b"not a png at all", "image/png", 415, "unsupported_document_type"),
        ("broken.pdf", make_pdf(["one", "two"])[:300], "application/pdf", 422, "pdf_corrupt"),
        ("locked.pdf", encrypt_pdf(make_pdf(["secret"])), "application/pdf", 422,
         "pdf_encrypted"),
        ("long.pdf", make_pdf(["page"] * (MAX_PAGES + 1)), "application/pdf", 422,
         "pdf_too_many_pages"),
        ("latin1.txt", "café".encode("latin-1"), "text/plain", 422, "invalid_text_encoding"),
        ("huge.txt", b"y" * (MAX_TEXT + 1), "text/plain", 422, "document_text_too_long"),
        ("empty.txt", b"", "text/plain", 400, "document_empty"),
    ],
)  # fmt: skip
def test_a_bad_file_gets_a_clear_error(
    stack: LocalStack, filename: str, data: bytes, content_type: str, status: int, code: str
) -> None:
    assert_error(upload(stack, filename, data, content_type), status, code)


def test_bad_upload_bodies(stack: LocalStack) -> None:
    url, headers = f"{stack.stream_url}/documents", auth(stack.api_key)
    error = assert_error(
        httpx.post(url, json={"filename": "a.txt", "data": "***"}, headers=headers),
        400,
        "invalid_value",
    )
    assert error["param"] == "data"
    error = assert_error(
        httpx.post(url, json={"data": "aGk="}, headers=headers), 400, "missing_required_parameter"
    )
    assert error["param"] == "filename"
    assert_error(
        httpx.post(url, json={"filename": "a", "data": "aGk=", "x": 1}, headers=headers),
        400,
        "unknown_parameter",
    )
    # Over the body limit of an upload (the base64 of the largest file, and some room): the
    # gateway refuses it before the worker sees it.
    huge = {"filename": "a.txt", "data": "A" * (2 * MAX_UPLOAD + 128 * 1024)}
    assert_error(httpx.post(url, json=huge, headers=headers), 413, "request_too_large")


def test_an_upload_may_be_larger_than_other_requests(stack: LocalStack) -> None:
    data = PNG + b"\x00" * (MAX_UPLOAD - len(PNG))  # 128 KiB of base64, over the 64 KiB
    assert len(base64.b64encode(data)) > stack.config.max_request_bytes
    response = upload(stack, "edge.png", data, "image/png")
    assert response.status_code == 200, response.text
    assert response.json()["size_bytes"] == MAX_UPLOAD


def test_unknown_methods_and_routes(stack: LocalStack) -> None:
    headers = auth(stack.api_key)
    assert_error(httpx.put(f"{stack.stream_url}/documents", headers=headers), 405,
                 "method_not_allowed")  # fmt: skip
    assert_error(httpx.get(f"{stack.stream_url}/embeddings", headers=headers), 405,
                 "method_not_allowed")  # fmt: skip
    assert_error(httpx.get(f"{stack.stream_url}/documents/nope", headers=headers), 404,
                 "document_not_found")  # fmt: skip
    assert httpx.get(f"{stack.stream_url}/documents").status_code == 401


# -- presigned uploads -----------------------------------------------------------------------


def start_upload(
    stack: LocalStack, filename: str, content_type: str, **extra: Any
) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.stream_url}/documents/uploads",
        json={"filename": filename, "content_type": content_type, **extra},
        headers=auth(stack.api_key),
    )
    assert response.status_code == 200, response.text
    started: dict[str, Any] = response.json()
    return started


def put(upload: dict[str, Any], data: bytes) -> None:
    response = httpx.request(upload["method"], upload["url"], content=data,
                             headers=upload["headers"])  # fmt: skip
    assert response.status_code == 200, response.text


def complete(stack: LocalStack, document_id: str) -> httpx.Response:
    return httpx.post(
        f"{stack.stream_url}/documents/{document_id}/complete", headers=auth(stack.api_key)
    )


def test_a_large_file_through_a_presigned_url(stack: LocalStack) -> None:
    # Larger than a body upload may be, within the presigned limit.
    pages = [f"Section {i} " + "lorem ipsum " * 100 for i in range(MAX_PAGES)]
    pdf = make_pdf(pages) + b"%" + b"p" * (MAX_UPLOAD + 1000) + b"\n"  # a long comment
    assert MAX_UPLOAD < len(pdf) < MAX_PRESIGNED
    started = start_upload(stack, "big.pdf", "application/pdf", size_bytes=len(pdf))
    doc, target = started["document"], started["upload"]
    assert doc["status"] == "pending_upload"
    assert target["method"] == "PUT"
    assert target["headers"] == {
        "content-type": "application/pdf",
        "x-amz-tagging": "switchboard-upload=pending",
    }
    assert target["url"].startswith(stack.aws_endpoint)
    assert_error(complete(stack, doc["id"]), 409, "upload_incomplete")
    put(target, pdf)
    done = complete(stack, doc["id"])
    assert done.status_code == 200, done.text
    ready = done.json()
    assert (ready["status"], ready["pages"], ready["size_bytes"]) == ("ready", MAX_PAGES, len(pdf))
    got = httpx.get(f"{stack.stream_url}/documents/{doc['id']}", headers=auth(stack.api_key))
    assert got.json() == ready
    assert complete(stack, doc["id"]).json() == ready  # completing again changes nothing


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"q" * (MAX_PRESIGNED + 1), 413, "document_too_large"),
        (make_pdf(["a", "b"])[:200], 422, "pdf_corrupt"),
        (encrypt_pdf(make_pdf(["a"])), 422, "pdf_encrypted"),
        (make_pdf(["p"] * (MAX_PAGES + 1)), 422, "pdf_too_many_pages"),
        (b"\x00\x01binary", 415, "unsupported_document_type"),
    ],
)
def test_a_bad_presigned_upload_fails_with_its_reason(
    stack: LocalStack, data: bytes, status: int, code: str
) -> None:
    started = start_upload(stack, "file.pdf", "application/pdf")
    doc = started["document"]
    put(started["upload"], data)
    assert_error(complete(stack, doc["id"]), status, code)
    failed = httpx.get(f"{stack.stream_url}/documents/{doc['id']}", headers=auth(stack.api_key))
    assert failed.json()["status"] == "failed" and failed.json()["error"]["code"] == code
    assert s3_keys(stack, f"tenants/dev/documents/{doc['id']}") == []
    assert_error(complete(stack, doc["id"]), 409, "document_failed")


def test_a_declared_size_over_the_limit_is_refused_at_once(stack: LocalStack) -> None:
    response = httpx.post(
        f"{stack.stream_url}/documents/uploads",
        json={"filename": "x.pdf", "size_bytes": MAX_PRESIGNED + 1},
        headers=auth(stack.api_key),
    )
    assert assert_error(response, 413, "document_too_large")["param"] == "size_bytes"


# -- tenant isolation ------------------------------------------------------------------------


def test_another_tenants_document_is_404_everywhere(stack: LocalStack) -> None:
    doc = upload(stack, "private.txt", b"for tenant dev only", "text/plain").json()
    other = auth(new_key(stack, "intruder"))
    base = f"{stack.stream_url}/documents/{doc['id']}"
    for response in (
        httpx.get(base, headers=other),
        httpx.delete(base, headers=other),
        httpx.get(f"{base}/content", headers=other),
        httpx.post(f"{base}/complete", headers=other),
    ):
        assert_error(response, 404, "document_not_found")
    assert httpx.get(f"{stack.stream_url}/documents", headers=other).json()["data"] == []
    assert httpx.get(base, headers=auth(stack.api_key)).status_code == 200


# -- embeddings -----------------------------------------------------------------------------


@pytest.mark.parametrize("door", api_and_stream())
def test_the_openai_sdk_creates_embeddings(stack: LocalStack, door: str) -> None:
    url = stack.api_url if door == "api" else stack.stream_url
    client = openai.OpenAI(base_url=url, api_key=stack.api_key, max_retries=0)
    # The SDK asks for base64 unless told otherwise, and decodes it.
    answer = client.embeddings.create(
        model="local/embedding",
        input=["Quarterly financial report", "The quarterly finance reports", "A cat asleep"],
    )
    assert answer.model == "local/embedding" and answer.object == "list"
    vectors = [item.embedding for item in answer.data]
    assert [item.index for item in answer.data] == [0, 1, 2]
    assert all(len(v) == 256 for v in vectors)
    assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-4

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
    assert answer.usage.prompt_tokens == 10 and answer.usage.total_tokens == 10  # words
    floats = client.embeddings.create(
        model="local/embedding",
        input="Quarterly financial report",
        encoding_format="float",
        dimensions=64,
    )
    assert len(floats.data[0].embedding) == 64
    # Without a model (the SDK always sends one), the local model answers.
    default = httpx.post(
        f"{url}/embeddings",
        json={"input": "Quarterly financial report"},
        headers=auth(stack.api_key),
    ).json()
    assert default["model"] == "local/embedding"
    assert default["data"][0]["embedding"] == pytest.approx(vectors[0], abs=1e-6)


def test_embedding_errors(stack: LocalStack) -> None:
    client = openai.OpenAI(base_url=stack.stream_url, api_key=stack.api_key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model="local/simulator", input="x")
    assert bad.value.code == "model_not_embedding"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nobody/nothing", input="x")
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model="local/embedding", input=[[1, 2, 3]])
    assert bad.value.code == "unsupported_parameter"
    with pytest.raises(openai.BadRequestError) as bad:
        client.embeddings.create(model="local/embedding", input=[""])
    assert bad.value.code == "invalid_value"


def test_models_lists_the_embedding_model(stack: LocalStack) -> None:
    client = openai.OpenAI(base_url=stack.stream_url, api_key=stack.api_key)
    models = {m.id: m for m in client.models.list()}
    assert models["local/embedding"].owned_by == "local"


def test_stack_logs_have_no_tracebacks(stack: LocalStack) -> None:
    log_dir = stack.config.log_dir
    assert log_dir is not None
    for path in Path(log_dir).glob("*.log"):
        assert "Traceback" not in path.read_text(errors="replace"), path.name

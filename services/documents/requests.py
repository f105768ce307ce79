"""The request bodies of the documents API and `POST /v1/embeddings`, validated on the
worker (containers/worker/documents_api.py) and described by the API contract."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DocumentUpload(BaseModel):
    """`POST /v1/documents`: a small file in the request, base64-encoded."""

    model_config = ConfigDict(extra="forbid")
    filename: str
    content_type: str = ""
    data: str = Field(description="The file's bytes, base64-encoded")
    folder: str = ""


class UploadRequest(BaseModel):
    """`POST /v1/documents/uploads`: a presigned upload of a large file."""

    model_config = ConfigDict(extra="forbid")
    filename: str
    content_type: str = ""
    size_bytes: int | None = Field(default=None, ge=1)
    folder: str = ""


class EmbeddingRequest(BaseModel):
    """`POST /v1/embeddings`, OpenAI's Embeddings API."""

    model_config = ConfigDict(extra="forbid")
    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

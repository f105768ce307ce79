"""`classify_image`: labels for an image, free or chosen from the caller's candidates."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from services.tools._support import MAX_IMAGE_BYTES, ImageInput, ask_json, image_part, load_image
from services.tools.base import Tool, ToolContext, ToolFailed, ToolLimits

MAX_LABELS = 10
MAX_LABEL_CHARS = 80
CandidateLabel = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LABEL_CHARS)]


class ClassifyImageInput(ImageInput):
    labels: list[CandidateLabel] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description=(
            "Candidate labels to choose from; without them the model names its own labels."
        ),
    )
    max_labels: int = Field(3, ge=1, le=MAX_LABELS, description="At most this many labels.")


class Label(BaseModel):
    label: str = Field(min_length=1, max_length=MAX_LABEL_CHARS)
    confidence: float = Field(ge=0, le=1)


class _Answer(BaseModel):
    labels: list[Label] = Field(min_length=1)


class ClassifyImageOutput(BaseModel):
    labels: list[Label] = Field(
        min_length=1, max_length=MAX_LABELS, description="Most confident first."
    )


class ClassifyImage(Tool):
    name = "classify_image"
    description = (
        "Classify an image (a URL, a base64 data URL, or one of the caller's image "
        "documents): labels with a confidence from 0 to 1, optionally chosen only from "
        "given candidate labels."
    )
    Input = ClassifyImageInput
    Output = ClassifyImageOutput
    route = "fast"
    limits = ToolLimits(
        max_image_bytes=MAX_IMAGE_BYTES,
        max_input_chars=8_000,
        max_output_tokens=400,
        timeout_seconds=60.0,
    )

    async def run(self, ctx: ToolContext, input: ClassifyImageInput) -> ClassifyImageOutput:
        url = await load_image(ctx, self.name, input.image_url, input.document_id)
        schema: dict[str, Any] = _Answer.model_json_schema()
        if input.labels:
            # The candidates go into the schema too, so a model (or the simulator) that
            # follows the schema can only answer with one of them.
            schema = {
                "type": "object",
                "properties": {
                    "labels": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "label": {"type": "string", "enum": list(input.labels)},
                                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                            },
                            "required": ["label", "confidence"],
                        },
                        "minItems": 1,
                    }
                },
                "required": ["labels"],
            }
            task = (
                f"Choose at most {input.max_labels} labels for the image, only from: "
                f"{', '.join(input.labels)}."
            )
        else:
            task = (
                f"Name at most {input.max_labels} labels for what the image shows: short "
                f"lowercase nouns or noun phrases, at most {MAX_LABEL_CHARS} characters each."
            )
        system = f"{task} Give each a confidence from 0 to 1."
        answer = await ask_json(
            ctx,
            self.name,
            system,
            image_part(url),
            "Classify this image.",
            answer=_Answer,
            schema=schema,
            max_tokens=self.limits.max_output_tokens,
        )
        labels = answer.labels
        if input.labels:
            allowed = {label.lower(): label for label in input.labels}
            unknown = [item.label for item in labels if item.label.lower() not in allowed]
            if unknown:
                raise ToolFailed(
                    f"The model answered with labels that are not among the candidates: "
                    f"{', '.join(unknown[:5])}."
                )
            labels = [
                Label(label=allowed[item.label.lower()], confidence=item.confidence)
                for item in labels
            ]
        best: dict[str, Label] = {}
        for item in sorted(labels, key=lambda item: item.confidence, reverse=True):
            best.setdefault(item.label, item)
        return ClassifyImageOutput(labels=list(best.values())[: input.max_labels])


TOOL = ClassifyImage()

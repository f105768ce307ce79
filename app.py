"""CDK entry point: the only code that reads the environment.

    npx cdk synth -c stage=prod -c certificate_arn=arn:aws:acm:... -c worker_domain_name=...

The stage comes from context ``stage`` (default ``dev``). Every ``StageConfig`` field can
be overridden by a context key of the same name, either on the command line or under
``stages.<stage>`` in ``cdk.json``; command-line values win.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from aws_cdk import App

import infra
from infra.config import StageConfig, StageConfigError

FIELDS = tuple(f.name for f in dataclasses.fields(StageConfig) if f.name != "name")


def stage_config(app: App) -> StageConfig:
    name = app.node.try_get_context("stage") or "dev"
    stages: dict[str, Any] = app.node.try_get_context("stages") or {}
    values: dict[str, object] = dict(stages.get(name) or {})
    for field in FIELDS:
        value = app.node.try_get_context(field)
        if value is not None:
            values[field] = value
    _reject_misspelt_keys(app.node.get_all_context())
    return StageConfig.from_context(str(name), values)


def _reject_misspelt_keys(context: dict[str, Any]) -> None:
    # Context also carries feature flags and CLI keys, so only near-misses are errors.
    known = (*FIELDS, "stage", "stages")
    for key in context:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
        if key not in known and close:
            raise StageConfigError(f"unknown context key {key!r}; did you mean {close[0]!r}?")


def main() -> None:
    app = App()
    infra.build(app, stage_config(app))
    app.synth()


if __name__ == "__main__":
    main()

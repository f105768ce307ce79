"""Fixtures for the CDK tests: a synthesized app per stage config, built once per session.

Every synth costs seconds, so the default app and the HTTPS app are each built once and
shared; templates are read-only, so sharing cannot couple tests. Lambda bundling is skipped
through the ``aws:cdk:bundling-stacks`` context (``test_bundling.py`` runs the bundler on its
own), and the fixture records any bundler call so a test can prove the skip is real.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, cx_api
from aws_cdk.assertions import Template

import infra
from infra.bundling import LocalPythonBundler
from infra.config import StageConfig

REPO_ROOT = infra.REPO_ROOT


def cdk_json_context() -> dict[str, Any]:
    """The feature flags ``cdk synth`` applies, so tests see the templates users deploy."""
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return context


def synth_context() -> dict[str, Any]:
    return {**cdk_json_context(), "aws:cdk:bundling-stacks": []}


@dataclass
class Synth:
    """One synthesized app: its stacks, their templates and the cloud assembly."""

    config: StageConfig
    stacks: dict[str, Stack]
    assembly: cx_api.CloudAssembly
    bundler_calls: list[str] = field(default_factory=list)

    def template(self, key: str) -> Template:
        return Template.from_stack(self.stacks[key])

    def raw(self, key: str) -> dict[str, Any]:
        template = dict(self.template(key).to_json())
        return template


def _synth(config: StageConfig, outdir: Path, monkeypatch: pytest.MonkeyPatch) -> Synth:
    calls: list[str] = []

    def record(self: LocalPythonBundler, output_dir: str, **_: object) -> bool:
        calls.append(self.component)
        raise AssertionError("bundling ran although aws:cdk:bundling-stacks is empty")

    monkeypatch.setattr(LocalPythonBundler, "try_bundle", record)
    app = App(context=synth_context(), outdir=str(outdir))
    stacks = infra.build(app, config)
    return Synth(config=config, stacks=stacks, assembly=app.synth(), bundler_calls=calls)


@pytest.fixture(scope="session")
def default_config() -> StageConfig:
    return StageConfig(name="test")


@pytest.fixture(scope="session")
def synth(default_config: StageConfig, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _synth(default_config, tmp_path_factory.mktemp("cdk-default"), monkeypatch)


@pytest.fixture(scope="session")
def https_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    config = StageConfig(
        name="tls",
        certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/abcd-1234",
        worker_domain_name="worker.switchboard.example.com",
        nat_gateways=1,
        simulator="fallback",
        alarm_email="ops@example.com",
        waf=True,
        manage_apigw_account_role=False,
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _synth(config, tmp_path_factory.mktemp("cdk-https"), monkeypatch)


@pytest.fixture(scope="session")
def dev_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """A developer's stage: destroyable, and (for the warning test) facing the internet."""
    config = StageConfig(name="dev", alb_internet_facing=True)
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _synth(config, tmp_path_factory.mktemp("cdk-dev"), monkeypatch)


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def only(template: dict[str, Any], type_: str) -> dict[str, Any]:
    found = resources(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
    properties: dict[str, Any] = next(iter(found.values()))["Properties"]
    return properties

"""app.py end to end: the entry point synthesizes a cloud assembly from context alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.infra.conftest import REPO_ROOT, cdk_json_context


def _run_app(outdir: Path, **context: object) -> dict[str, object]:
    env = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        # What the CDK CLI passes: cdk.json context plus -c values.
        "CDK_CONTEXT_JSON": json.dumps(
            {**cdk_json_context(), "aws:cdk:bundling-stacks": [], **context}
        ),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, check=True, capture_output=True
    )
    manifest: dict[str, object] = json.loads((outdir / "manifest.json").read_text())
    return manifest


def test_app_synthesizes_the_four_stacks(tmp_path: Path) -> None:
    manifest = _run_app(tmp_path, stage="qa", nat_gateways="2", log_retention_days="7")
    artifacts = manifest["artifacts"]
    assert isinstance(artifacts, dict)
    stacks = {
        name
        for name, artifact in artifacts.items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert stacks == {
        "Switchboard-qa-State",
        "Switchboard-qa-Worker",
        "Switchboard-qa-FrontDoor",
        "Switchboard-qa-Observability",
    }
    for name in stacks:
        # Environment-agnostic: deployable to whichever account and region the CLI uses.
        assert artifacts[name]["environment"] == "aws://unknown-account/unknown-region"

    worker = json.loads((tmp_path / "Switchboard-qa-Worker.template.json").read_text())
    nat = [r for r in worker["Resources"].values() if r["Type"] == "AWS::EC2::NatGateway"]
    assert len(nat) == 2
    logs = [r for r in worker["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert [g["Properties"]["RetentionInDays"] for g in logs] == [7]


def test_app_rejects_a_bad_context_value(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "CDK_CONTEXT_JSON": json.dumps({"nat_gateways": "9"}),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "nat_gateways 9 must be 0, 1 or 2" in result.stderr


def test_app_rejects_a_misspelt_context_key(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "CDK_CONTEXT_JSON": json.dumps({**cdk_json_context(), "nat_gateway": "2"}),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "unknown context key 'nat_gateway'; did you mean 'nat_gateways'?" in result.stderr


def test_app_refuses_an_internet_facing_plain_http_worker_outside_dev(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "CDK_CONTEXT_JSON": json.dumps(
            {**cdk_json_context(), "stage": "prod", "alb_internet_facing": "true"}
        ),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "plain HTTP" in result.stderr and "certificate_arn" in result.stderr
    assert not (tmp_path / "manifest.json").exists()

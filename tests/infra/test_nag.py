"""cdk-nag's AwsSolutions pack over every stack: each finding is acknowledged with a
written reason (infra/nag.py), or the test fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

import infra
from infra.config import StageConfig
from infra.nag import ACKNOWLEDGEMENTS, unacknowledged, unused
from tests.infra.conftest import synth_context

Finding = tuple[str, str]


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> list[Finding]:
    """One app with the pack as a validation plugin; the report lists every finding."""
    outdir = tmp_path_factory.mktemp("cdk-nag")
    app = App(context=synth_context(), outdir=str(outdir))
    stacks = infra.build(app, StageConfig(name="test"))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    try:
        app.synth()
    except RuntimeError as exc:  # jsii surfaces the failed validation as a RuntimeError
        assert "ValidationFailed" in str(exc), exc
    report = json.loads(Path(outdir, "validation-report.json").read_text())
    found = [
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]
    checked = {path.split("/")[0] for _, path in found}
    assert checked == {stack.stack_name for stack in stacks.values()} - {
        stacks["observability"].stack_name  # no finding there: alarms, a topic, a dashboard
    }
    return found


def test_every_finding_is_acknowledged_with_a_reason(findings: list[Finding]) -> None:
    assert findings, "the pack ran and found the acknowledged findings"
    assert unacknowledged(findings) == []


def test_every_acknowledgement_still_matches_a_finding(findings: list[Finding]) -> None:
    assert [a.rule for a in unused(findings)] == []


def test_every_acknowledgement_says_why() -> None:
    for acknowledgement in ACKNOWLEDGEMENTS:
        assert acknowledgement.rule.startswith("AwsSolutions-")
        assert len(acknowledgement.reason.split()) >= 15, acknowledgement.rule


def test_an_unacknowledged_finding_fails(findings: list[Finding]) -> None:
    invented = ("AwsSolutions-DDB3", "Switchboard-test-State/SwitchboardTable/Resource")
    assert unacknowledged([*findings, invented]) == [invented]

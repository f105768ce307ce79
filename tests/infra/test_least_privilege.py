"""Each role gets the data actions its code uses, by name, on what it uses."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.conftest import Synth, resources

DATA_PLANE = ("dynamodb:", "s3:", "sqs:", "secretsmanager:", "bedrock:", "kms:")


def _statements(synth: Synth) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for key in synth.stacks:
        for name, policy in resources(synth.raw(key), "AWS::IAM::Policy").items():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                found.append((key, name, statement))
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_no_data_plane_statement_has_a_wildcard_action(synth: Synth, https_synth: Synth) -> None:
    for built in (synth, https_synth):
        checked = 0
        for stack, policy, statement in _statements(built):
            for action in _actions(statement):
                if action.startswith(DATA_PLANE):
                    checked += 1
                    assert "*" not in action, (stack, policy, action)
        assert checked > 20


def test_no_role_may_scan_the_table_or_delete_beyond_the_tenants_prefix(synth: Synth) -> None:
    for stack, policy, statement in _statements(synth):
        actions = _actions(statement)
        assert "dynamodb:Scan" not in actions and "dynamodb:BatchGetItem" not in actions
        if any(a.startswith("s3:") and a != "s3:ListBucket" for a in actions):
            assert json.dumps(statement["Resource"]).endswith('"/tenants/*"]]}'), (stack, policy)
        if actions == ["s3:ListBucket"]:
            assert statement["Condition"] == {"StringLike": {"s3:prefix": ["tenants/*"]}}


def test_the_authorizer_only_looks_keys_up(synth: Synth) -> None:
    (statements,) = [
        [s for _, p, s in _statements(synth) if p == name]
        for name in resources(synth.raw("frontdoor"), "AWS::IAM::Policy")
        if "Authorizer" in name
    ]
    data = [a for s in statements for a in _actions(s) if a.startswith(DATA_PLANE)]
    assert data == ["dynamodb:GetItem"]


def test_bedrock_is_scoped_to_the_configured_model_families(synth: Synth) -> None:
    (bedrock,) = [
        s for _, _, s in _statements(synth) if any(a.startswith("bedrock:") for a in _actions(s))
    ]
    resources_ = json.dumps(bedrock["Resource"])
    assert "foundation-model/anthropic*" in resources_
    assert "foundation-model/amazon.nova*" in resources_
    assert "foundation-model/*" not in resources_ and 'inference-profile/*"' not in resources_
    assert len(bedrock["Resource"]) == 2 * len(synth.config.bedrock_families)

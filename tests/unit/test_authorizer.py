"""The API's REQUEST Lambda authorizer, with the events API Gateway sends it (REST API, no
identity sources, caching off) and a key store on moto."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.tables import create_table
from lambdas.gateway import authorizer
from services.tenancy.keys import KeyStore

TABLE = "switchboard-authorizer-test"
API = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3d4e5"

# What API Gateway sends a REQUEST authorizer for `POST /api/v1/chat/completions` (the
# shape of https://docs.aws.amazon.com/apigateway/latest/developerguide/
# api-gateway-lambda-authorizer-input.html): header names as the client wrote them.
EVENT: dict[str, Any] = {
    "type": "REQUEST",
    "methodArn": f"{API}/api/POST/v1/chat/completions",
    "resource": "/v1/chat/completions",
    "path": "/v1/chat/completions",
    "httpMethod": "POST",
    "headers": {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "Host": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
        "User-Agent": "OpenAI/Python 3.51.0",
        "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    },
    "multiValueHeaders": {
        "Accept": ["application/json"],
        "Content-Type": ["application/json"],
        "Host": ["a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"],
        "User-Agent": ["OpenAI/Python 3.51.0"],
        "X-Amzn-Trace-Id": ["Root=1-67891233-abcdef012345678912345678"],
        "X-Forwarded-For": ["203.0.113.7"],
        "X-Forwarded-Port": ["443"],
        "X-Forwarded-Proto": ["https"],
    },
    "queryStringParameters": {},
    "multiValueQueryStringParameters": {},
    "pathParameters": {},
    "stageVariables": {},
    "requestContext": {
        "path": "/api/v1/chat/completions",
        "accountId": "123456789012",
        "resourceId": "x1y2z3",
        "stage": "api",
        "domainPrefix": "a1b2c3d4e5",
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "identity": {"apiKey": "", "sourceIp": "203.0.113.7", "userAgent": "OpenAI/Python"},
        "domainName": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
        "resourcePath": "/v1/chat/completions",
        "httpMethod": "POST",
        "extendedRequestId": "EXAMPLE=",
        "apiId": "a1b2c3d4e5",
    },
}


def event(headers: dict[str, str], *, method: str = "POST", resource: str | None = None) -> Any:
    """The event above for `method resource`, with `headers` added as the client sent them."""
    sent = copy.deepcopy(EVENT)
    resource = resource or EVENT["resource"]
    sent["methodArn"] = f"{API}/api/{method}{resource}"
    sent["httpMethod"] = sent["requestContext"]["httpMethod"] = method
    sent["resource"] = sent["path"] = sent["requestContext"]["resourcePath"] = resource
    sent["headers"].update(headers)
    sent["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
    return sent


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyStore]:
    with mock_aws():
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("SWITCHBOARD_TABLE", TABLE)
        monkeypatch.setattr(authorizer, "_authenticator", None)
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        yield KeyStore(dynamodb, TABLE)
    authorizer._authenticator = None


def test_a_valid_bearer_key_gets_a_policy_for_this_method_only(keys: KeyStore) -> None:
    minted = keys.create("acme")
    answer = authorizer.handler(event({"Authorization": f"Bearer {minted.secret}"}), None)
    assert answer["principalId"] == f"acme/{minted.record.key_id}"
    assert answer["policyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Action": "execute-api:Invoke",
                "Effect": "Allow",
                "Resource": f"{API}/api/POST/v1/chat/completions",
            }
        ],
    }
    assert answer["context"] == {"tenant": "acme", "key_id": minted.record.key_id}
    assert all(isinstance(v, str) for v in answer["context"].values())  # what a context holds


def test_anthropic_clients_x_api_key_is_accepted(keys: KeyStore) -> None:
    minted = keys.create("acme")
    sent = event({"x-api-key": minted.secret, "anthropic-version": "2023-06-01"},
                 resource="/v1/messages")  # fmt: skip
    answer = authorizer.handler(sent, None)
    assert answer["policyDocument"]["Statement"][0]["Resource"] == f"{API}/api/POST/v1/messages"
    assert answer["context"]["tenant"] == "acme"


def test_a_run_events_request_is_allowed_for_its_own_path(keys: KeyStore) -> None:
    minted = keys.create("acme")
    sent = event(
        {"Authorization": f"Bearer {minted.secret}", "Last-Event-ID": "4"},
        method="GET",
        resource="/v1/runs/run_0123456789abcdef01234567/events",
    )
    sent["resource"] = "/v1/runs/{run_id}/events"
    sent["pathParameters"] = {"run_id": "run_0123456789abcdef01234567"}
    answer = authorizer.handler(sent, None)
    assert answer["policyDocument"]["Statement"][0]["Resource"].endswith(
        "/api/GET/v1/runs/run_0123456789abcdef01234567/events"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no key at all (no identity sources: the authorizer still runs)
        {"Authorization": "Bearer sb-not-a-key-anyone-was-given"},
        {"x-api-key": "sb-not-a-key-anyone-was-given"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "unknown-bearer", "unknown-x-api-key", "not-bearer", "empty"],
)
def test_no_valid_key_is_unauthorized(keys: KeyStore, headers: dict[str, str]) -> None:
    keys.create("acme")
    with pytest.raises(Exception, match=r"^Unauthorized$") as raised:
        authorizer.handler(event(headers), None)
    assert type(raised.value) is Exception  # API Gateway answers 401 for exactly this


def test_a_revoked_key_is_unauthorized_within_the_cache_bound(
    keys: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_KEY_CACHE_SECONDS", "0")
    minted = keys.create("acme")
    headers = {"Authorization": f"Bearer {minted.secret}"}
    assert authorizer.handler(event(headers), None)["context"]["tenant"] == "acme"
    keys.revoke("acme", minted.record.key_id)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(event(headers), None)


def test_keys_are_cached_five_seconds_by_default(keys: KeyStore) -> None:
    minted = keys.create("acme")
    reads: list[int] = []
    client = authorizer.authenticator()._keys._client  # type: ignore[attr-defined]
    client.meta.events.register("before-call.dynamodb.GetItem", lambda **kw: reads.append(1))
    for _ in range(5):
        authorizer.handler(event({"Authorization": f"Bearer {minted.secret}"}), None)
    assert len(reads) == 1
    assert authorizer.authenticator()._cache_seconds == 5.0  # type: ignore[attr-defined]


def test_an_event_that_is_no_request_authorizer_event_fails_loudly(keys: KeyStore) -> None:
    with pytest.raises(ValueError, match="methodArn"):
        authorizer.handler({"type": "REQUEST", "headers": {}}, None)

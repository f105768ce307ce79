"""The front-door stack: REST API to the gateway Lambda, streaming Function URL, outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import api_errors
from tests.infra.conftest import Synth, only, resources

SHARED_ENV = {
    "SWITCHBOARD_FORWARD_TIMEOUT_SECONDS": "28",
    "SWITCHBOARD_SYNC_DEADLINE_SECONDS": "25",
    "SWITCHBOARD_MAX_REQUEST_BYTES": str(4 * 1024 * 1024),
    "SWITCHBOARD_KEY_CACHE_SECONDS": "5",
    "SWITCHBOARD_CONVERSATION_RETENTION_DAYS": "30",
}


def _function(synth: Synth, handler: str) -> dict[str, Any]:
    functions = resources(synth.raw("frontdoor"), "AWS::Lambda::Function").values()
    (found,) = [f["Properties"] for f in functions if f["Properties"]["Handler"] == handler]
    return dict(found)


def _gateway_responses(synth: Synth) -> dict[str, dict[str, Any]]:
    found = resources(synth.raw("frontdoor"), "AWS::ApiGateway::GatewayResponse").values()
    return {r["Properties"]["ResponseType"]: r["Properties"] for r in found}


def test_rest_api_proxies_every_path_and_method_to_the_gateway(synth: Synth) -> None:
    template = synth.raw("frontdoor")
    api = only(template, "AWS::ApiGateway::RestApi")
    assert api["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    proxy = only(template, "AWS::ApiGateway::Resource")
    assert proxy["PathPart"] == "{proxy+}"

    methods = list(resources(template, "AWS::ApiGateway::Method").values())
    assert len(methods) == 2  # ANY / and ANY /{proxy+}
    for method in methods:
        props = method["Properties"]
        assert props["HttpMethod"] == "ANY"
        assert props["AuthorizationType"] == "NONE"  # the gateway checks API keys itself
        integration = props["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert integration["IntegrationHttpMethod"] == "POST"
        assert integration["TimeoutInMillis"] == 29_000
        assert "GatewayFunction" in json.dumps(integration["Uri"])


def test_stage_is_v1_so_the_invoke_url_is_the_sdk_base_url(synth: Synth) -> None:
    stage = only(synth.raw("frontdoor"), "AWS::ApiGateway::Stage")
    assert stage["StageName"] == "api"


def test_integration_timeout_answers_504_in_the_openai_error_shape(synth: Synth) -> None:
    response = _gateway_responses(synth)["INTEGRATION_TIMEOUT"]
    assert response["StatusCode"] == "504"
    body = json.loads(response["ResponseTemplates"]["application/json"])
    assert body == {
        "error": {
            "message": "The request took longer than the API Gateway integration timeout.",
            "type": "timeout",
            "param": None,
            "code": "gateway_timeout",
        }
    }
    assert body == api_errors.INTEGRATION_TIMEOUT_BODY


@pytest.mark.parametrize(
    ("response_type", "error_type"),
    [("DEFAULT_4XX", "invalid_request_error"), ("DEFAULT_5XX", "server_error")],
)
def test_default_gateway_responses_are_openai_shaped(
    synth: Synth, response_type: str, error_type: str
) -> None:
    template = _gateway_responses(synth)[response_type]["ResponseTemplates"]["application/json"]
    # What API Gateway renders for a throttled request, say:
    rendered = template.replace("$context.error.messageString", '"Too Many Requests"').replace(
        "$context.error.responseType", "THROTTLED"
    )
    assert json.loads(rendered) == {
        "error": {
            "message": "Too Many Requests",
            "type": error_type,
            "param": None,
            "code": "THROTTLED",
        }
    }


def test_request_too_large_answers_413(synth: Synth) -> None:
    response = _gateway_responses(synth)["REQUEST_TOO_LARGE"]
    assert response["StatusCode"] == "413"
    body = json.loads(response["ResponseTemplates"]["application/json"])
    assert body == api_errors.REQUEST_TOO_LARGE_BODY


def test_gateway_function(synth: Synth) -> None:
    fn = _function(synth, "lambdas.gateway.handler.handler")
    assert fn["Runtime"] == "python3.12"
    assert fn["Architectures"] == ["x86_64"]
    assert fn["Timeout"] == 30
    assert fn["MemorySize"] == 512
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert "Layers" not in fn
    env = fn["Environment"]["Variables"]
    assert {k: env[k] for k in SHARED_ENV} == SHARED_ENV
    assert env["POWERTOOLS_SERVICE_NAME"] == "switchboard-gateway"
    assert "SwitchboardTable" in json.dumps(env["SWITCHBOARD_TABLE"])
    assert "SwitchboardBucket" in json.dumps(env["SWITCHBOARD_BUCKET"])
    assert "SwitchboardInternalToken" in json.dumps(env["SWITCHBOARD_INTERNAL_TOKEN_SECRET_ARN"])
    worker_url = json.dumps(env["SWITCHBOARD_WORKER_URL"])
    assert '"http://"' in worker_url and "LoadBalancer" in worker_url
    assert "SWITCHBOARD_INTERNAL_TOKEN" not in env
    assert "SwitchboardAdminKey" in json.dumps(env["SWITCHBOARD_ADMIN_KEY_SECRET_ARN"])
    assert "SWITCHBOARD_ADMIN_KEY" not in env, "the admin key must never be plain text"


def test_only_the_gateway_reads_the_admin_key(synth: Synth) -> None:
    template = synth.raw("frontdoor")
    readers = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        if "SwitchboardAdminKey" in json.dumps([s["Resource"] for s in statements]):
            readers += [json.dumps(role) for role in policy["Properties"]["Roles"]]
    assert len(readers) == 1 and "Gateway" in readers[0]
    stream_env = _function(synth, "run.sh")["Environment"]["Variables"]
    assert "SWITCHBOARD_ADMIN_KEY_SECRET_ARN" not in stream_env


def test_stream_function_runs_under_the_lambda_web_adapter(synth: Synth) -> None:
    fn = _function(synth, "run.sh")
    assert fn["Runtime"] == "python3.12"
    assert fn["Architectures"] == ["x86_64"]
    assert fn["Timeout"] == 900
    (layer,) = fn["Layers"]
    layer_arn = json.dumps(layer)
    assert "753240598075:layer:LambdaAdapterLayerX86:25" in layer_arn
    assert '"Ref": "AWS::Region"' in layer_arn, "the layer must follow the deploy region"
    env = fn["Environment"]["Variables"]
    assert {k: env[k] for k in SHARED_ENV} == SHARED_ENV
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_PORT"] == "8000"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/health"
    assert env["POWERTOOLS_SERVICE_NAME"] == "switchboard-stream"
    assert "SwitchboardBucket" in json.dumps(env["SWITCHBOARD_BUCKET"])
    # AI routes are relayed to the REST API's invoke URL (with its stage), over HTTPS.
    upstream = json.dumps(env["SWITCHBOARD_UPSTREAM_URL"])
    assert '"https://"' in upstream and ".execute-api." in upstream and '"/api"' in upstream
    (api_id,) = resources(synth.raw("frontdoor"), "AWS::ApiGateway::RestApi")
    assert {"Ref": api_id} in env["SWITCHBOARD_UPSTREAM_URL"]["Fn::Join"][1]


def test_stream_function_url_streams_without_iam_auth(synth: Synth) -> None:
    url = only(synth.raw("frontdoor"), "AWS::Lambda::Url")
    assert url["InvokeMode"] == "RESPONSE_STREAM"
    assert url["AuthType"] == "NONE"
    assert set(url["Cors"]["AllowMethods"]) == {"GET", "POST", "PATCH", "DELETE"}
    assert {"Authorization", "Content-Type"} <= set(url["Cors"]["AllowHeaders"])


def test_both_functions_read_and_write_the_table_and_bucket_and_read_the_secret(
    synth: Synth,
) -> None:
    policies = resources(synth.raw("frontdoor"), "AWS::IAM::Policy").values()
    assert len(policies) == 2
    for policy in policies:
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        actions = {a for s in statements for a in _as_list(s["Action"])}
        assert {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem"} <= actions
        assert "dynamodb:BatchWriteItem" in actions  # deleting a conversation's messages
        assert {"s3:GetObject*", "s3:PutObject", "s3:DeleteObject*", "s3:List*"} <= actions
        assert "SwitchboardBucket" in json.dumps(
            [s["Resource"] for s in statements if "s3:PutObject" in _as_list(s["Action"])]
        )
        assert "secretsmanager:GetSecretValue" in actions


def test_log_groups_have_the_configured_retention(synth: Synth) -> None:
    groups = resources(synth.raw("frontdoor"), "AWS::Logs::LogGroup").values()
    assert [g["Properties"]["RetentionInDays"] for g in groups] == [30, 30]


def test_outputs(synth: Synth) -> None:
    outputs = synth.raw("frontdoor")["Outputs"]
    api_url = outputs["ApiUrl"]["Value"]["Fn::Join"][1]
    assert api_url[0] == "https://"
    assert api_url[-1].endswith("/v1")
    (url_id,) = resources(synth.raw("frontdoor"), "AWS::Lambda::Url")
    assert outputs["StreamUrl"]["Value"] == {"Fn::GetAtt": [url_id, "FunctionUrl"]}
    assert "LoadBalancer" in json.dumps(outputs["WorkerUrl"]["Value"])


def test_with_a_certificate_the_front_doors_use_https_to_the_worker_domain(
    https_synth: Synth,
) -> None:
    for handler in ("lambdas.gateway.handler.handler", "run.sh"):
        env = _function(https_synth, handler)["Environment"]["Variables"]
        assert env["SWITCHBOARD_WORKER_URL"] == "https://worker.switchboard.example.com"


def test_emulator_answers_a_failed_function_as_the_default_5xx_template_renders(
    synth: Synth,
) -> None:
    from services.frontdoor.gateway_responses import FUNCTION_FAILED

    template = _gateway_responses(synth)["DEFAULT_5XX"]["ResponseTemplates"]["application/json"]
    rendered = template.replace("$context.error.messageString", '"Internal server error"')
    rendered = rendered.replace("$context.error.responseType", "DEFAULT_5XX")
    assert json.loads(rendered) == FUNCTION_FAILED


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value

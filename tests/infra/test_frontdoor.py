"""The front-door stack: REST API to the gateway Lambda, streaming Function URL, outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import api_errors
from services.frontdoor.routes import ROUTES, Owner, match, routes_of
from tests.infra.conftest import Synth, only, resources

SHARED_ENV = {
    "SWITCHBOARD_MAX_REQUEST_BYTES": str(4 * 1024 * 1024),
    "SWITCHBOARD_KEY_CACHE_SECONDS": "5",
    "SWITCHBOARD_CONVERSATION_RETENTION_DAYS": "30",
}


def _paths(template: dict[str, Any]) -> dict[str, str]:
    """Each API resource's logical id -> its full path ("/v1/runs/{run_id}")."""
    found = resources(template, "AWS::ApiGateway::Resource")
    assert len(resources(template, "AWS::ApiGateway::RestApi")) == 1
    paths: dict[str, str] = {}

    def path_of(key: str) -> str:
        if key not in paths:
            props = found[key]["Properties"]
            parent = props["ParentId"]
            base = "" if "Fn::GetAtt" in parent else path_of(parent["Ref"])
            paths[key] = f"{base}/{props['PathPart']}"
        return paths[key]

    for key in found:
        path_of(key)
    return paths


def _methods(synth: Synth) -> dict[tuple[str, str], dict[str, Any]]:
    """(HTTP method, path) -> the method's properties."""
    template = synth.raw("frontdoor")
    paths = _paths(template)
    methods = {}
    for method in resources(template, "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        resource = props["ResourceId"]
        path = paths[resource["Ref"]] if "Ref" in resource else "/"
        methods[(props["HttpMethod"], path)] = props
    return methods


def _function(synth: Synth, handler: str) -> dict[str, Any]:
    functions = resources(synth.raw("frontdoor"), "AWS::Lambda::Function").values()
    (found,) = [f["Properties"] for f in functions if f["Properties"]["Handler"] == handler]
    return dict(found)


def _gateway_responses(synth: Synth) -> dict[str, dict[str, Any]]:
    found = resources(synth.raw("frontdoor"), "AWS::ApiGateway::GatewayResponse").values()
    return {r["Properties"]["ResponseType"]: r["Properties"] for r in found}


def test_every_worker_route_streams_from_the_internal_alb_through_the_vpc_link(
    synth: Synth,
) -> None:
    methods = _methods(synth)
    (authorizer_id,) = resources(synth.raw("frontdoor"), "AWS::ApiGateway::Authorizer")
    routes = routes_of(Owner.WORKER)
    assert len(routes) >= 15
    for route in routes:
        props = methods[(route.method, route.path)]
        integration = props["Integration"]
        where = f"{route.method} {route.path}"
        assert integration["Type"] == "HTTP_PROXY", where
        assert integration["ConnectionType"] == "VPC_LINK", where
        assert "VpcLink" in json.dumps(integration["ConnectionId"]), where
        target = json.dumps(integration["IntegrationTarget"])
        assert "PublishOutputRefLoadBalancer" in target, where  # the ALB's ARN (its Ref)
        assert integration["ResponseTransferMode"] == "STREAM", where
        assert integration["TimeoutInMillis"] == 900_000, where
        assert integration["IntegrationHttpMethod"] == route.method, where
        uri = integration["Uri"]["Fn::Join"][1]
        assert uri[0] == "http://" and "LoadBalancer" in json.dumps(uri[1]), where
        assert uri[-1] == route.path, where  # the path named: the stage is not forwarded
        expected = {
            f"integration.request.path.{p}": f"method.request.path.{p}" for p in route.params
        }
        expected["integration.request.header.X-Forwarded-Prefix"] = "'/api'"
        # The correlation id: API Gateway's request id, as the worker reads it.
        expected["integration.request.header.x-switchboard-request-id"] = "context.requestId"
        assert integration["RequestParameters"] == expected, where
        assert props["RequestParameters"] == {
            f"method.request.path.{p}": True for p in route.params
        }
        assert props["AuthorizationType"] == "CUSTOM", where
        assert props["AuthorizerId"] == {"Ref": authorizer_id}, where


def test_every_control_route_goes_to_the_gateway_lambda_without_the_authorizer(
    synth: Synth,
) -> None:
    methods = _methods(synth)
    for route in routes_of(Owner.CONTROL):
        props = methods[(route.method, route.path)]
        integration = props["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        assert integration["TimeoutInMillis"] == 29_000
        assert "GatewayFunction" in json.dumps(integration["Uri"])
        assert props["AuthorizationType"] == "NONE"  # the gateway checks keys itself


def test_unknown_paths_and_methods_reach_the_gateway_for_404_and_405(synth: Synth) -> None:
    template = synth.raw("frontdoor")
    methods = _methods(synth)
    every_path = {"/", *_paths(template).values()}
    assert "/{proxy+}" in every_path
    for path in every_path:
        props = methods[("ANY", path)]
        assert props["Integration"]["Type"] == "AWS_PROXY", path
        assert "GatewayFunction" in json.dumps(props["Integration"]["Uri"]), path
        assert props["AuthorizationType"] == "NONE", path
    # A method the table does not list on a known path is the ANY's: the gateway
    # answers it 405 from the same table (e.g. DELETE /v1/chat/completions).
    assert ("DELETE", "/v1/chat/completions") not in methods
    assert match("DELETE", "/v1/chat/completions").allowed == ("POST",)
    declared = {(r.method, r.path) for r in ROUTES}
    assert {k for k in methods if k[0] != "ANY"} == declared


def test_authorizer_has_no_identity_sources_and_no_cache(synth: Synth) -> None:
    authorizer = only(synth.raw("frontdoor"), "AWS::ApiGateway::Authorizer")
    assert authorizer["Type"] == "REQUEST"
    assert authorizer["IdentitySource"] == ""  # ANDed sources would refuse x-api-key
    assert authorizer["AuthorizerResultTtlInSeconds"] == 0
    assert "AuthorizerFunction" in json.dumps(authorizer["AuthorizerUri"])
    fn = _function(synth, "lambdas.gateway.authorizer.handler")
    assert fn["Architectures"] == ["arm64"]
    assert fn["Code"] == _function(synth, "lambdas.gateway.handler.handler")["Code"]


@pytest.mark.parametrize(
    ("response_type", "status", "body"),
    [
        ("UNAUTHORIZED", "401", api_errors.UNAUTHORIZED_BODY),
        ("ACCESS_DENIED", "403", api_errors.ACCESS_DENIED_BODY),
    ],
)
def test_authorizer_refusals_are_openai_shaped(
    synth: Synth, response_type: str, status: str, body: dict[str, Any]
) -> None:
    response = _gateway_responses(synth)[response_type]
    assert response["StatusCode"] == status
    rendered = json.loads(response["ResponseTemplates"]["application/json"])
    assert rendered == body
    assert set(rendered["error"]) == {"message", "type", "param", "code"}


def test_stage_is_v1_so_the_invoke_url_is_the_sdk_base_url(synth: Synth) -> None:
    stage = only(synth.raw("frontdoor"), "AWS::ApiGateway::Stage")
    assert stage["StageName"] == "api"


def test_integration_timeout_answers_504_in_both_error_envelopes(synth: Synth) -> None:
    response = _gateway_responses(synth)["INTEGRATION_TIMEOUT"]
    assert response["StatusCode"] == "504"
    body = json.loads(response["ResponseTemplates"]["application/json"])
    assert body == {
        "type": "error",  # Anthropic's, beside OpenAI's: one response serves every path
        "error": {
            "message": "The request took longer than the API Gateway integration timeout.",
            "type": "timeout",
            "param": None,
            "code": "gateway_timeout",
        },
    }
    assert body == api_errors.INTEGRATION_TIMEOUT_BODY


@pytest.mark.parametrize(
    ("response_type", "error_type"),
    [("DEFAULT_4XX", "invalid_request_error"), ("DEFAULT_5XX", "server_error")],
)
def test_default_gateway_responses_have_both_error_envelopes(
    synth: Synth, response_type: str, error_type: str
) -> None:
    template = _gateway_responses(synth)[response_type]["ResponseTemplates"]["application/json"]
    # What API Gateway renders for a throttled request, say:
    rendered = template.replace("$context.error.messageString", '"Too Many Requests"').replace(
        "$context.error.responseType", "THROTTLED"
    )
    assert json.loads(rendered) == {
        "type": "error",
        "error": {
            "message": "Too Many Requests",
            "type": error_type,
            "param": None,
            "code": "THROTTLED",
        },
    }


def test_request_too_large_answers_413(synth: Synth) -> None:
    response = _gateway_responses(synth)["REQUEST_TOO_LARGE"]
    assert response["StatusCode"] == "413"
    body = json.loads(response["ResponseTemplates"]["application/json"])
    assert body == api_errors.REQUEST_TOO_LARGE_BODY


def test_gateway_function(synth: Synth) -> None:
    fn = _function(synth, "lambdas.gateway.handler.handler")
    assert fn["Runtime"] == "python3.11"
    assert fn["Architectures"] == ["arm64"]
    assert fn["Timeout"] == 30
    assert fn["MemorySize"] == synth.config.gateway_memory_mib
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert "Layers" not in fn
    env = fn["Environment"]["Variables"]
    assert {k: env[k] for k in SHARED_ENV} == SHARED_ENV
    assert env["POWERTOOLS_SERVICE_NAME"] == "switchboard-gateway"
    assert "SwitchboardTable" in json.dumps(env["SWITCHBOARD_TABLE"])
    assert "SwitchboardBucket" in json.dumps(env["SWITCHBOARD_BUCKET"])
    assert "SWITCHBOARD_WORKER_URL" not in env  # it never calls the worker
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


def test_stream_function_runs_under_the_arm64_lambda_web_adapter(synth: Synth) -> None:
    fn = _function(synth, "run.sh")
    assert fn["Runtime"] == "python3.11"
    assert fn["Architectures"] == ["arm64"]
    assert fn["Timeout"] == 900
    (layer,) = fn["Layers"]
    layer_arn = json.dumps(layer)
    assert "753240598075:layer:LambdaAdapterLayerArm64:25" in layer_arn
    assert '"Ref": "AWS::Region"' in layer_arn, "the layer must follow the deploy region"
    env = fn["Environment"]["Variables"]
    assert {k: env[k] for k in SHARED_ENV} == SHARED_ENV
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_PORT"] == "8000"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/health"
    assert env["POWERTOOLS_SERVICE_NAME"] == "switchboard-stream"
    # It relays WORKER routes to the API's public URL (stage included, HTTPS), not the ALB.
    upstream = env["SWITCHBOARD_UPSTREAM_URL"]["Fn::Join"][1]
    assert upstream[0] == "https://" and upstream[-1].endswith("/api")
    assert ".execute-api." in json.dumps(upstream)
    assert "LoadBalancer" not in json.dumps(upstream)


def test_stream_function_url_streams_without_iam_auth(synth: Synth) -> None:
    url = only(synth.raw("frontdoor"), "AWS::Lambda::Url")
    assert url["InvokeMode"] == "RESPONSE_STREAM"
    assert url["AuthType"] == "NONE"
    assert set(url["Cors"]["AllowMethods"]) == {"GET", "POST", "PATCH", "DELETE"}
    assert {"Authorization", "Content-Type", "x-api-key"} <= set(url["Cors"]["AllowHeaders"])


def test_no_header_only_trust_anywhere(synth: Synth, https_synth: Synth) -> None:
    """No internal token and no x-switchboard-* trust header reaches any function or task."""
    for built in (synth, https_synth):
        for key in ("stateful", "worker", "frontdoor"):
            text = json.dumps(built.raw(key)).lower()
            assert "internal_token" not in text and "internaltoken" not in text, key
            assert "x-switchboard-tenant" not in text, key
            assert "x-switchboard-internal" not in text, key


def test_log_groups_have_the_configured_retention(synth: Synth) -> None:
    groups = resources(synth.raw("frontdoor"), "AWS::Logs::LogGroup").values()
    # gateway, authorizer, stream, the access log and the execution log
    assert [g["Properties"]["RetentionInDays"] for g in groups] == [30] * 5


def test_outputs(synth: Synth) -> None:
    outputs = synth.raw("frontdoor")["Outputs"]
    api_url = outputs["ApiUrl"]["Value"]["Fn::Join"][1]
    assert api_url[0] == "https://"
    assert api_url[-1].endswith("/api/v1")
    (url_id,) = resources(synth.raw("frontdoor"), "AWS::Lambda::Url")
    assert outputs["StreamUrl"]["Value"] == {"Fn::GetAtt": [url_id, "FunctionUrl"]}
    assert "WorkerUrl" not in outputs  # the worker has no public address


def test_with_a_certificate_worker_routes_use_https_to_the_worker_domain(
    https_synth: Synth,
) -> None:
    for (_, path), props in _methods(https_synth).items():
        if props["Integration"]["Type"] == "HTTP_PROXY":
            assert props["Integration"]["Uri"] == f"https://worker.switchboard.example.com{path}"


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

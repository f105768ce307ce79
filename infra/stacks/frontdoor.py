"""The two public entry points: the REST API and the streaming Function URL.

The REST API's resources come from the route table (`services/frontdoor/routes.py`):
WORKER routes go straight to the worker's internal load balancer through a VPC link (v2),
streamed, behind a Lambda authorizer; CONTROL routes go to the gateway Lambda. Every other
method and path reaches the gateway Lambda too, which answers 404 or 405 from the same
table, so API Gateway never answers one of its own 403 "Missing Authentication Token"s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra import api_errors
from infra.bundling import lambda_code
from infra.config import StageConfig
from infra.constructs import FrontDoorFunction
from infra.constructs import logs as logs_
from infra.constructs.permissions import (
    TABLE_KEY_LOOKUP,
    TABLE_READ_WRITE,
    grant_table,
    grant_tenant_objects,
)
from infra.stacks.stateful import GSI1
from services.frontdoor.routes import ROUTES, Owner, RouteSpec
from services.telemetry.ids import EDGE_REQUEST_ID_HEADER, REQUEST_ID_HEADER

# The stage is not the API version: the worker and the gateway see /v1/... paths, and
# SDKs use <invoke url>/v1 as base_url (the ApiUrl output).
API_STAGE_NAME = "api"
FORWARDED_PREFIX = f"/{API_STAGE_NAME}"
GATEWAY_HANDLER = "lambdas.gateway.handler.handler"
AUTHORIZER_HANDLER = "lambdas.gateway.authorizer.handler"
STREAM_HANDLER = "run.sh"
LWA_ACCOUNT = "753240598075"
LWA_LAYER = "LambdaAdapterLayerArm64"
LWA_PORT = 8000
STREAM_TIMEOUT = Duration.minutes(15)
AUTHORIZER_TIMEOUT = Duration.seconds(10)
# One JSON line per call at the edge: who (IP, never the key), what (method, route), how
# it went (status, latencies, the authorizer's and API Gateway's own errors), and the
# request id that follows the call to the worker.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "extendedRequestId": "$context.extendedRequestId",
        "ip": "$context.identity.sourceIp",
        "userAgent": "$context.identity.userAgent",
        "requestTime": "$context.requestTimeEpoch",
        "method": "$context.httpMethod",
        "route": "$context.resourcePath",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "latencyMs": "$context.responseLatency",
        "integrationStatus": "$context.integration.status",
        "integrationLatencyMs": "$context.integration.latency",
        "integrationError": "$context.integration.error",
        "authorizerStatus": "$context.authorizer.status",
        "authorizerLatencyMs": "$context.authorizer.latency",
        "authorizerError": "$context.authorizer.error",
        "errorType": "$context.error.responseType",
        "wafStatus": "$context.waf.status",
    }
)


@dataclass(frozen=True)
class WorkerEdge:
    """What the API needs of the worker stack to reach it privately."""

    vpc_link: apigwv2.IVpcLink
    load_balancer: elbv2.IApplicationLoadBalancer
    url: str  # scheme://host the integration URIs name (TLS verifies this host)


class FrontDoorStack(Stack):
    """API Gateway (routes from the route table), the gateway and authorizer Lambdas, and
    the stream Lambda's Function URL."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        repo_root: Path,
        table: dynamodb.ITable,
        bucket: s3.IBucket,
        admin_key: secretsmanager.ISecret,
        worker: WorkerEdge,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            id,
            description=f"Switchboard {config.name}: REST API, gateway and stream Lambdas",
            **kwargs,
        )
        self.config = config
        self.worker = worker
        shared: dict[str, Any] = {
            "config": config,
            "repo_root": repo_root,
            "table": table,
            "bucket": bucket,
        }
        gateway_code = lambda_code("gateway", repo_root, config)

        self.gateway = FrontDoorFunction(
            self,
            "Gateway",
            component="gateway",
            handler=GATEWAY_HANDLER,
            timeout=Duration.seconds(config.lambda_timeout_seconds),
            memory_mib=config.gateway_memory_mib,
            code=gateway_code,
            environment={
                "POWERTOOLS_SERVICE_NAME": "switchboard-gateway",
                # The admin API is served by the gateway only.
                "SWITCHBOARD_ADMIN_KEY_SECRET_ARN": admin_key.secret_arn,
            },
            **shared,
        ).function
        grant_table(self.gateway, table, TABLE_READ_WRITE, indexes=[GSI1])
        grant_tenant_objects(self.gateway, bucket)
        admin_key.grant_read(self.gateway)

        # The edge check on WORKER routes: an unknown key is answered 401 here, before
        # anything reaches the VPC. Same bundle as the gateway, another handler.
        self.authorizer_function = FrontDoorFunction(
            self,
            "Authorizer",
            component="gateway",
            handler=AUTHORIZER_HANDLER,
            timeout=AUTHORIZER_TIMEOUT,
            memory_mib=config.authorizer_memory_mib,
            code=gateway_code,
            environment={"POWERTOOLS_SERVICE_NAME": "switchboard-authorizer"},
            **shared,
        ).function
        grant_table(self.authorizer_function, table, TABLE_KEY_LOOKUP)

        self.api = self._rest_api(config)

        adapter = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "WebAdapter",
            f"arn:{Aws.PARTITION}:lambda:{Stack.of(self).region}:{LWA_ACCOUNT}"
            f":layer:{LWA_LAYER}:{config.lwa_layer_version}",
        )
        self.api_url = (
            f"https://{self.api.rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"
            f"/{API_STAGE_NAME}"
        )
        self.stream = FrontDoorFunction(
            self,
            "Stream",
            component="stream",
            handler=STREAM_HANDLER,
            timeout=STREAM_TIMEOUT,
            memory_mib=config.stream_memory_mib,
            layers=[adapter],
            environment={
                "POWERTOOLS_SERVICE_NAME": "switchboard-stream",
                "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",
                "AWS_LWA_INVOKE_MODE": "response_stream",
                "AWS_LWA_PORT": str(LWA_PORT),
                "AWS_LWA_READINESS_CHECK_PATH": "/health",
                # WORKER routes are relayed to the REST API's public URL (HTTPS) with the
                # caller's own key: the stream door reaches the private worker only
                # through API Gateway, its authorizer and its VPC link (a Function URL
                # cannot stream from inside the VPC).
                "SWITCHBOARD_UPSTREAM_URL": self.api_url,
            },
            **shared,
        ).function
        grant_table(self.stream, table, TABLE_READ_WRITE, indexes=[GSI1])
        grant_tenant_objects(self.stream, bucket)
        # Auth type NONE is deliberate: Switchboard authenticates its own API keys in the
        # app (IAM auth would demand SigV4 from every SDK client).
        self.stream_url = self.stream.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.NONE,
            invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM,
            cors=lambda_.FunctionUrlCorsOptions(
                allowed_origins=["*"],
                allowed_methods=[
                    lambda_.HttpMethod.GET,
                    lambda_.HttpMethod.POST,
                    lambda_.HttpMethod.PATCH,  # rename a conversation
                    lambda_.HttpMethod.DELETE,
                ],
                allowed_headers=[
                    "Authorization",
                    "Content-Type",
                    "Last-Event-ID",
                    "x-api-key",
                    REQUEST_ID_HEADER,
                ],
                # A browser client may read the correlation id of its calls.
                exposed_headers=[REQUEST_ID_HEADER],
                max_age=Duration.hours(1),
            ),
        )

        CfnOutput(
            self,
            "ApiUrl",
            value=f"{self.api_url}/v1",
            description="base_url for OpenAI-compatible SDKs (REST API, ends in /v1)",
        )
        CfnOutput(
            self,
            "StreamUrl",
            value=self.stream_url.url,
            description="Streaming front door (Function URL, server-sent events)",
        )

    # -- the REST API ----------------------------------------------------------------------

    def _rest_api(self, config: StageConfig) -> apigw.RestApi:
        self.access_logs = logs_.log_group(self, "AccessLogs", config)
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"switchboard-{config.name}",
            description="Switchboard gateway: OpenAI-compatible API, runs, control plane",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            deploy_options=apigw.StageOptions(
                stage_name=API_STAGE_NAME,
                tracing_enabled=config.tracing,
                metrics_enabled=True,
                # Execution logs for errors only, never bodies (keys and prompts).
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
                throttling_rate_limit=config.api_throttle_rate_limit,
                throttling_burst_limit=config.api_throttle_burst_limit,
            ),
            # Access and execution logs need the account-level CloudWatch role; one per
            # account and region, so a stage can leave it to whoever already manages it.
            cloud_watch_role=config.manage_apigw_account_role,
        )
        # API Gateway creates its execution log group on first use, kept forever; made
        # here first, it gets the stage's retention and goes with the stack.
        execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{api.rest_api_id}/{API_STAGE_NAME}",
            retention=logs_.RETENTION[config.log_retention_days],
            removal_policy=RemovalPolicy.DESTROY,
        )
        api.deployment_stage.node.add_dependency(execution_logs)
        if config.waf:
            self._web_acl(api, config)
        self.control_integration = apigw.LambdaIntegration(
            self.gateway,
            proxy=True,
            timeout=Duration.seconds(config.api_integration_timeout_seconds),
            allow_test_invoke=False,
        )
        # No identity sources and no caching: identity sources are ANDed, so naming
        # Authorization would refuse Anthropic's x-api-key before the authorizer runs, and
        # a cached answer needs identity sources to key on. The authorizer keeps its own
        # short in-process key cache.
        self.authorizer = apigw.RequestAuthorizer(
            self,
            "KeyAuthorizer",
            handler=self.authorizer_function,
            identity_sources=[],
            results_cache_ttl=Duration.seconds(0),
        )

        resources: dict[str, apigw.IResource] = {"/": api.root}
        for route in ROUTES:
            resource = self._resource(api, resources, route.path)
            if route.owner is Owner.WORKER:
                self._worker_method(resource, route)
            else:
                resource.add_method(route.method, self.control_integration)
        # Every other method of a known path, every intermediate path and every unknown
        # path go to the gateway, which answers 405 (with Allow) or 404 from the table.
        for resource in resources.values():
            resource.add_method("ANY", self.control_integration)
        api.root.add_resource("{proxy+}").add_method("ANY", self.control_integration)

        self._gateway_responses(api)
        return api

    def _web_acl(self, api: apigw.RestApi, config: StageConfig) -> None:
        """AWS managed common rules and a per-IP rate limit in front of the stage."""

        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True,
                metric_name=f"switchboard-{config.name}-{name}",
                sampled_requests_enabled=True,
            )

        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility("acl"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="AWSManagedRulesCommonRuleSet",
                    priority=1,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS",
                            name="AWSManagedRulesCommonRuleSet",
                            # Prompts and documents are larger than the rule's 8 KB body
                            # limit; the API's own body limits apply instead.
                            rule_action_overrides=[
                                wafv2.CfnWebACL.RuleActionOverrideProperty(
                                    name="SizeRestrictions_BODY",
                                    action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                                )
                            ],
                        )
                    ),
                    visibility_config=visibility("common"),
                ),
                wafv2.CfnWebACL.RuleProperty(
                    name="RequestsPerIp",
                    priority=2,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=config.waf_requests_per_ip_per_5_minutes,
                            aggregate_key_type="IP",
                        )
                    ),
                    visibility_config=visibility("rate"),
                ),
            ],
        )
        association = wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=api.deployment_stage.stage_arn,
            web_acl_arn=acl.attr_arn,
        )
        association.node.add_dependency(api.deployment_stage)

    def _resource(
        self, api: apigw.RestApi, resources: dict[str, apigw.IResource], path: str
    ) -> apigw.IResource:
        current = "/"
        resource = resources["/"]
        for part in path.strip("/").split("/"):
            current = f"{current.rstrip('/')}/{part}"
            if current not in resources:
                resources[current] = resource.add_resource(part)
            resource = resources[current]
        return resource

    def _worker_method(self, resource: apigw.IResource, route: RouteSpec) -> None:
        """HTTP_PROXY to the internal ALB through the VPC link, streamed.

        The URI names the path, with its parameters mapped, so the stage is not forwarded:
        the worker sees /v1/... and learns the prefix from X-Forwarded-Prefix.
        """
        parameters = {
            f"integration.request.path.{p}": f"method.request.path.{p}" for p in route.params
        }
        parameters["integration.request.header.X-Forwarded-Prefix"] = f"'{FORWARDED_PREFIX}'"
        # API Gateway's request id, the worker's correlation id unless the client sent its
        # own x-request-id (services/telemetry/ids.py); a client's value here is replaced.
        parameters[f"integration.request.header.{EDGE_REQUEST_ID_HEADER}"] = "context.requestId"
        integration = apigw.Integration(
            type=apigw.IntegrationType.HTTP_PROXY,
            integration_http_method=route.method,
            uri=f"{self.worker.url}{route.path}",
            options=apigw.IntegrationOptions(
                request_parameters=parameters,
                response_transfer_mode=apigw.ResponseTransferMode.STREAM,
                timeout=Duration.seconds(self.config.worker_integration_timeout_seconds),
            ),
        )
        method = resource.add_method(
            route.method,
            integration,
            authorizer=self.authorizer,
            authorization_type=apigw.AuthorizationType.CUSTOM,
            request_parameters={f"method.request.path.{p}": True for p in route.params},
        )
        # VPC link v2 to an ALB: the L2 integration only knows v1 links (to an NLB).
        cfn = method.node.default_child
        assert isinstance(cfn, apigw.CfnMethod)
        cfn.add_property_override("Integration.ConnectionType", "VPC_LINK")
        cfn.add_property_override("Integration.ConnectionId", self.worker.vpc_link.vpc_link_id)
        cfn.add_property_override(
            "Integration.IntegrationTarget", self.worker.load_balancer.load_balancer_arn
        )

    def _gateway_responses(self, api: apigw.RestApi) -> None:
        json_type = "application/json"
        api.add_gateway_response(
            "Unauthorized",
            type=apigw.ResponseType.UNAUTHORIZED,
            status_code=str(api_errors.UNAUTHORIZED_STATUS),
            templates={json_type: api_errors.UNAUTHORIZED_TEMPLATE},
        )
        api.add_gateway_response(
            "AccessDenied",
            type=apigw.ResponseType.ACCESS_DENIED,
            status_code=str(api_errors.ACCESS_DENIED_STATUS),
            templates={json_type: api_errors.ACCESS_DENIED_TEMPLATE},
        )
        api.add_gateway_response(
            "IntegrationTimeout",
            type=apigw.ResponseType.INTEGRATION_TIMEOUT,
            status_code=str(api_errors.INTEGRATION_TIMEOUT_STATUS),
            templates={json_type: api_errors.INTEGRATION_TIMEOUT_TEMPLATE},
        )
        api.add_gateway_response(
            "RequestTooLarge",
            type=apigw.ResponseType.REQUEST_TOO_LARGE,
            status_code=str(api_errors.REQUEST_TOO_LARGE_STATUS),
            templates={json_type: api_errors.REQUEST_TOO_LARGE_TEMPLATE},
        )
        api.add_gateway_response(
            "Default4xx",
            type=apigw.ResponseType.DEFAULT_4_XX,
            templates={json_type: api_errors.DEFAULT_4XX_TEMPLATE},
        )
        api.add_gateway_response(
            "Default5xx",
            type=apigw.ResponseType.DEFAULT_5_XX,
            templates={json_type: api_errors.DEFAULT_5XX_TEMPLATE},
        )

"""The two public entry points: the REST API (gateway) and the streaming Function URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra import api_errors
from infra.config import StageConfig
from infra.constructs import FrontDoorFunction

# The stage is not the API version: paths keep their /v1 prefix in the proxy event, so the
# gateway, the stream front door, the worker and a custom domain all see the same paths.
# SDKs use <invoke url>/v1 as base_url (the ApiUrl output).
API_STAGE_NAME = "api"
GATEWAY_HANDLER = "lambdas.gateway.handler.handler"
STREAM_HANDLER = "run.sh"
LWA_ACCOUNT = "753240598075"
LWA_PORT = 8000
STREAM_TIMEOUT = Duration.minutes(15)


class FrontDoorStack(Stack):
    """API Gateway in front of the gateway Lambda, and the stream Lambda's Function URL.

    Both front doors authenticate Switchboard API keys themselves, answer control-plane
    calls from DynamoDB and forward AI work to the worker with the internal token.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        repo_root: Path,
        table: dynamodb.ITable,
        bucket: s3.IBucket,
        internal_token: secretsmanager.ISecret,
        admin_key: secretsmanager.ISecret,
        worker_url: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            id,
            description=f"Switchboard {config.name}: REST API, gateway and stream Lambdas",
            **kwargs,
        )
        shared: dict[str, Any] = {
            "config": config,
            "repo_root": repo_root,
            "table": table,
            "bucket": bucket,
            "internal_token": internal_token,
            "worker_url": worker_url,
        }

        self.gateway = FrontDoorFunction(
            self,
            "Gateway",
            component="gateway",
            handler=GATEWAY_HANDLER,
            timeout=Duration.seconds(config.lambda_timeout_seconds),
            memory_mib=config.gateway_memory_mib,
            environment={
                "POWERTOOLS_SERVICE_NAME": "switchboard-gateway",
                # The admin API is served by the gateway only.
                "SWITCHBOARD_ADMIN_KEY_SECRET_ARN": admin_key.secret_arn,
            },
            **shared,
        ).function
        admin_key.grant_read(self.gateway)
        self.api = self._rest_api(config)

        adapter = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "WebAdapter",
            f"arn:{Aws.PARTITION}:lambda:{Stack.of(self).region}:{LWA_ACCOUNT}"
            f":layer:LambdaAdapterLayerX86:{config.lwa_layer_version}",
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
                # The door relays AI routes to the REST API, over HTTPS, with the client's
                # own key (a Function URL cannot stream from inside the VPC).
                "SWITCHBOARD_UPSTREAM_URL": (
                    f"https://{self.api.rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"
                    f"/{API_STAGE_NAME}"
                ),
            },
            **shared,
        ).function
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
                allowed_headers=["Authorization", "Content-Type", "Last-Event-ID"],
                max_age=Duration.hours(1),
            ),
        )

        self.api_base_url = (
            f"https://{self.api.rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"
            f"/{API_STAGE_NAME}/v1"
        )
        CfnOutput(
            self,
            "ApiUrl",
            value=self.api_base_url,
            description="base_url for OpenAI-compatible SDKs (REST API, ends in /v1)",
        )
        CfnOutput(
            self,
            "StreamUrl",
            value=self.stream_url.url,
            description="Streaming front door (Function URL, server-sent events)",
        )
        CfnOutput(
            self,
            "WorkerUrl",
            value=worker_url,
            description="Worker load balancer (requires an API key or the internal token)",
        )

    def _rest_api(self, config: StageConfig) -> apigw.RestApi:
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
            ),
            cloud_watch_role=False,
        )
        integration = apigw.LambdaIntegration(
            self.gateway,
            proxy=True,
            timeout=Duration.seconds(config.api_integration_timeout_seconds),
            allow_test_invoke=False,
        )
        api.root.add_method("ANY", integration)
        api.root.add_proxy(default_integration=integration, any_method=True)

        json_type = "application/json"
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
        return api

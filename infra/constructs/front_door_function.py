"""A front-door Lambda function: bundled locally, with its own log group and permissions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.bundling import lambda_code
from infra.config import StageConfig
from infra.constructs import logs as logs_

RUNTIMES = {
    "3.11": lambda_.Runtime.PYTHON_3_11,
    "3.12": lambda_.Runtime.PYTHON_3_12,
    "3.13": lambda_.Runtime.PYTHON_3_13,
}


class FrontDoorFunction(Construct):
    """One ``lambdas/<component>`` function that reads and writes the state table and the
    bucket of large conversation messages.

    It receives the settings every front door shares (table, worker URL, internal-token
    secret ARN, forward deadline, request size limit, key cache) and ``environment`` on top.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        component: str,
        handler: str,
        config: StageConfig,
        repo_root: Path,
        table: dynamodb.ITable,
        bucket: s3.IBucket,
        internal_token: secretsmanager.ISecret,
        worker_url: str,
        timeout: Duration,
        memory_mib: int,
        environment: Mapping[str, str] | None = None,
        layers: Sequence[lambda_.ILayerVersion] = (),
    ) -> None:
        super().__init__(scope, id)
        log_group = logs_.log_group(self, "Logs", config)
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"Switchboard {config.name}: {component} front door",
            runtime=RUNTIMES[config.python_version],
            architecture=lambda_.Architecture.X86_64,
            handler=handler,
            code=lambda_code(component, repo_root, config),
            memory_size=memory_mib,
            timeout=timeout,
            layers=list(layers),
            tracing=lambda_.Tracing.ACTIVE if config.tracing else lambda_.Tracing.DISABLED,
            log_group=log_group,
            environment={
                "SWITCHBOARD_TABLE": table.table_name,
                "SWITCHBOARD_BUCKET": bucket.bucket_name,
                "SWITCHBOARD_CONVERSATION_RETENTION_DAYS": str(config.conversation_retention_days),
                "SWITCHBOARD_WORKER_URL": worker_url,
                "SWITCHBOARD_INTERNAL_TOKEN_SECRET_ARN": internal_token.secret_arn,
                "SWITCHBOARD_FORWARD_TIMEOUT_SECONDS": _seconds(
                    config.gateway_forward_timeout_seconds
                ),
                "SWITCHBOARD_SYNC_DEADLINE_SECONDS": _seconds(config.sync_deadline_seconds),
                "SWITCHBOARD_MAX_REQUEST_BYTES": str(config.max_request_bytes),
                "SWITCHBOARD_KEY_CACHE_SECONDS": str(config.key_cache_seconds),
                **(environment or {}),
            },
        )
        table.grant_read_write_data(self.function)
        bucket.grant_read_write(self.function)
        internal_token.grant_read(self.function)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)

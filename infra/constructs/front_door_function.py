"""A front-door Lambda function: bundled locally, with its own log group and permissions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
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
    """One ``lambdas/<component>`` function on Graviton (ARM64), bundled without Docker.

    It receives the settings every front door shares (table, bucket, request size limit,
    key cache, conversation retention) and ``environment`` on top. Permissions are the
    caller's to grant: each function gets only what its handler uses.
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
        timeout: Duration,
        memory_mib: int,
        environment: Mapping[str, str] | None = None,
        layers: Sequence[lambda_.ILayerVersion] = (),
        code: lambda_.Code | None = None,
    ) -> None:
        super().__init__(scope, id)
        log_group = logs_.log_group(self, "Logs", config)
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"Switchboard {config.name}: {component} front door",
            runtime=RUNTIMES[config.python_version],
            architecture=lambda_.Architecture.ARM_64,
            handler=handler,
            # Functions of one component share one asset (one bundle, one upload).
            code=code or lambda_code(component, repo_root, config),
            memory_size=memory_mib,
            timeout=timeout,
            layers=list(layers),
            tracing=lambda_.Tracing.ACTIVE if config.tracing else lambda_.Tracing.DISABLED,
            log_group=log_group,
            environment={
                "SWITCHBOARD_TABLE": table.table_name,
                "SWITCHBOARD_BUCKET": bucket.bucket_name,
                "SWITCHBOARD_CONVERSATION_RETENTION_DAYS": str(config.conversation_retention_days),
                "SWITCHBOARD_MAX_REQUEST_BYTES": str(config.max_request_bytes),
                "SWITCHBOARD_KEY_CACHE_SECONDS": str(config.key_cache_seconds),
                **(environment or {}),
            },
        )

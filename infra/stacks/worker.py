"""The AI worker: a Fargate service behind an internet-facing Application Load Balancer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Annotations, Aws, Duration, IgnoreMode, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig
from infra.constructs import logs as logs_

WORKER_PORT = 8000
OPEN_FILES = 65_536  # per worker task: see the container's ulimits
HEALTH_CHECK_PATH = "/health"
WORKER_DOCKERFILE = "containers/worker/Dockerfile"

HTTP_LISTENER_WARNING_ID = "@switchboard/worker:plainHttpListener"
HTTP_LISTENER_WARNING = (
    "No certificate_arn is configured, so the worker load balancer listens on plain HTTP: "
    "the internal token the front doors send to the worker, and every prompt and completion, "
    "cross the internet unencrypted. Set certificate_arn and worker_domain_name for any stage "
    "that carries real traffic."
)


class WorkerStack(Stack):
    """VPC, ECS cluster and the autoscaled worker service with its load balancer.

    The load balancer is internet-facing because the stream front door cannot join a VPC
    (Function URL response streaming does not work there). The worker rejects every
    request that carries neither a valid API key nor the internal token.
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
        run_queue: sqs.IQueue,
        run_dead_letters: sqs.IQueue,
        provider_keys: secretsmanager.ISecret,
        internal_token: secretsmanager.ISecret,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            id,
            description=f"Switchboard {config.name}: VPC, ECS cluster, worker service, ALB",
            **kwargs,
        )
        private = config.nat_gateways > 0
        subnets = [ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC)]
        if private:
            subnets.append(
                ec2.SubnetConfiguration(
                    name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                )
            )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=config.nat_gateways,
            subnet_configuration=subnets,
        )
        cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )

        task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=config.worker_cpu,
            memory_limit_mib=config.worker_memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        log_group = logs_.log_group(self, "Logs", config)
        task.add_container(
            "Worker",
            image=ecs.ContainerImage.from_asset(
                str(repo_root),
                file=WORKER_DOCKERFILE,
                # The root .dockerignore stages only services/ and containers/, for
                # `docker build` and for the CDK asset alike.
                ignore_mode=IgnoreMode.DOCKER,
                platform=ecr_assets.Platform.LINUX_AMD64,
            ),
            port_mappings=[ecs.PortMapping(container_port=WORKER_PORT)],
            # A streamed completion holds two descriptors (the client's connection and the
            # upstream's): 10,000 waiting streams need more than 20,000 open files.
            ulimits=[
                ecs.Ulimit(name=ecs.UlimitName.NOFILE, soft_limit=OPEN_FILES, hard_limit=OPEN_FILES)
            ],
            environment={
                "SWITCHBOARD_TABLE": table.table_name,
                "SWITCHBOARD_BUCKET": bucket.bucket_name,
                "SWITCHBOARD_CONVERSATION_RETENTION_DAYS": str(config.conversation_retention_days),
                "SWITCHBOARD_MAX_REQUEST_BYTES": str(config.max_request_bytes),
                "SWITCHBOARD_KEY_CACHE_SECONDS": str(config.key_cache_seconds),
                "SWITCHBOARD_RUN_QUEUE_URL": run_queue.queue_url,
                "SWITCHBOARD_RUN_DLQ_URL": run_dead_letters.queue_url,
                "SWITCHBOARD_PROVIDER_KEYS_SECRET_ARN": provider_keys.secret_arn,
                "SWITCHBOARD_SIMULATOR": config.simulator,
            },
            secrets={
                "SWITCHBOARD_INTERNAL_TOKEN": ecs.Secret.from_secrets_manager(internal_token),
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="worker", log_group=log_group),
        )
        table.grant_read_write_data(task.task_role)
        bucket.grant_read_write(task.task_role)
        run_queue.grant_consume_messages(task.task_role)
        run_queue.grant_send_messages(task.task_role)
        run_dead_letters.grant_send_messages(task.task_role)
        provider_keys.grant_read(task.task_role)
        # Bedrock models are called with the task role (Converse, ConverseStream), in any
        # region a cross-region inference profile routes to.
        task.task_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                resources=[
                    f"arn:{Aws.PARTITION}:bedrock:*::foundation-model/*",
                    f"arn:{Aws.PARTITION}:bedrock:*:{Aws.ACCOUNT_ID}:inference-profile/*",
                ],
            )
        )

        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task,
            desired_count=config.worker_desired_count,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=Duration.seconds(60),
            vpc_subnets=ec2.SubnetSelection(
                subnet_type=(
                    ec2.SubnetType.PRIVATE_WITH_EGRESS if private else ec2.SubnetType.PUBLIC
                )
            ),
            # Without NAT gateways the tasks need a public address to reach the providers.
            assign_public_ip=not private,
        )
        # A worker follows and cancels the runs another worker owns at that worker's own
        # address (services/runs/service.py), so workers must reach each other.
        for group in self.service.connections.security_groups:
            group.add_ingress_rule(group, ec2.Port.tcp(WORKER_PORT), "workers reach a run's owner")
        scaling = self.service.auto_scale_task_count(
            min_capacity=config.worker_min_count, max_capacity=config.worker_max_count
        )
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=config.worker_cpu_target_percent,
            scale_in_cooldown=Duration.seconds(300),
            scale_out_cooldown=Duration.seconds(60),
        )

        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=self.vpc,
            internet_facing=True,
            # Server-sent event streams stay open; the worker also sends heartbeats.
            idle_timeout=Duration.seconds(config.alb_idle_timeout_seconds),
            drop_invalid_header_fields=True,
        )
        if config.certificate_arn:
            listener = self.load_balancer.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_arn(config.certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                open=True,
            )
            # The DNS record for worker_domain_name (an alias to the load balancer) is
            # managed outside this app, which makes no hosted-zone lookups.
            host = config.worker_domain_name
        else:
            Annotations.of(self).add_warning_v2(HTTP_LISTENER_WARNING_ID, HTTP_LISTENER_WARNING)
            listener = self.load_balancer.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=True
            )
            host = self.load_balancer.load_balancer_dns_name
        listener.add_targets(
            "Worker",
            port=WORKER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.service],
            health_check=elbv2.HealthCheck(
                path=HEALTH_CHECK_PATH,
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
            # Runs are durable and streams resume with Last-Event-ID, so a deploy need
            # not wait the default five minutes for open streams to drain.
            deregistration_delay=Duration.seconds(30),
        )
        self.worker_url = f"{config.worker_scheme}://{host}"

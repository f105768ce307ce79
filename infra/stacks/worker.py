"""The AI worker: a Fargate service (ARM64) behind an internal Application Load Balancer
that only API Gateway's VPC link reaches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Annotations, Aws, Duration, IgnoreMode, Size, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
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
from infra.constructs.permissions import (
    TABLE_READ_WRITE,
    WORKER_OBJECTS,
    grant_table,
    grant_tenant_objects,
)
from infra.stacks.stateful import GSI1

WORKER_PORT = 8000
OPEN_FILES = 65_536  # per worker task: see the container's ulimits
HEALTH_CHECK_PATH = "/health"
WORKER_DOCKERFILE = "containers/worker/Dockerfile"

HTTP_LISTENER_WARNING_ID = "@switchboard/worker:plainHttpOverInternet"
HTTP_LISTENER_WARNING = (
    "alb_internet_facing is set without certificate_arn: the worker load balancer takes "
    "plain HTTP from the internet, so API keys, prompts and answers can cross it "
    "unencrypted. Allowed in a dev stage only; any other stage refuses to synth."
)


class WorkerStack(Stack):
    """VPC, ECS cluster, the autoscaled worker service, its load balancer and the VPC link.

    The load balancer is internal: API Gateway reaches it through a VPC link (v2), whose
    security group is the only one the load balancer admits. Its listener is plain HTTP
    unless a certificate is configured: the traffic stays inside the VPC, where AWS
    carries it on its own network, and no key crosses the internet unencrypted (clients
    reach API Gateway over TLS). The tasks admit only the load balancer, and each other
    on the worker port (a worker follows and cancels runs at their owner).
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
        if private:
            # Free gateway endpoints: state and documents traffic skips the NAT gateway.
            self.vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
            self.vpc.add_gateway_endpoint(
                "DynamoDb", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
            )
        placement = ec2.SubnetSelection(
            subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS if private else ec2.SubnetType.PUBLIC
        )

        # Egress-only groups: nothing from the internet, each hop admits only the one before.
        self.vpc_link_security_group = ec2.SecurityGroup(
            self,
            "VpcLinkSecurityGroup",
            vpc=self.vpc,
            description="API Gateway VPC link: reaches the worker load balancer only",
            allow_all_outbound=False,
        )
        alb_security_group = ec2.SecurityGroup(
            self,
            "LoadBalancerSecurityGroup",
            vpc=self.vpc,
            description="Worker load balancer: admits the VPC link only",
            allow_all_outbound=False,
        )
        task_security_group = ec2.SecurityGroup(
            self,
            "TaskSecurityGroup",
            vpc=self.vpc,
            description="Worker tasks: admit the load balancer and each other; egress only",
            allow_all_outbound=True,
        )
        self.cluster = cluster = ecs.Cluster(
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
                cpu_architecture=ecs.CpuArchitecture.ARM64,
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
                platform=ecr_assets.Platform.LINUX_ARM64,
            ),
            port_mappings=[ecs.PortMapping(container_port=WORKER_PORT)],
            # A streamed completion holds two descriptors (the client's connection and the
            # upstream's): 10,000 waiting streams need more than 20,000 open files.
            ulimits=[
                ecs.Ulimit(name=ecs.UlimitName.NOFILE, soft_limit=OPEN_FILES, hard_limit=OPEN_FILES)
            ],
            # SIGTERM to SIGKILL: graceful shutdown flushes usage and releases run leases.
            stop_timeout=Duration.seconds(config.worker_stop_timeout_seconds),
            environment={
                "SWITCHBOARD_TABLE": table.table_name,
                "SWITCHBOARD_BUCKET": bucket.bucket_name,
                "SWITCHBOARD_CONVERSATION_RETENTION_DAYS": str(config.conversation_retention_days),
                "SWITCHBOARD_MAX_REQUEST_BYTES": str(config.max_request_bytes),
                "SWITCHBOARD_KEY_CACHE_SECONDS": str(config.key_cache_seconds),
                "SWITCHBOARD_SYNC_DEADLINE_SECONDS": _seconds(config.sync_deadline_seconds),
                "SWITCHBOARD_RUN_QUEUE_URL": run_queue.queue_url,
                "SWITCHBOARD_RUN_DLQ_URL": run_dead_letters.queue_url,
                "SWITCHBOARD_PROVIDER_KEYS_SECRET_ARN": provider_keys.secret_arn,
                "SWITCHBOARD_SIMULATOR": config.simulator,
            },
            # Non-blocking: the worker writes its access lines and metrics to stdout from its
            # event loop, which must never wait on the log driver (a full buffer drops
            # lines rather than stalling every request).
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="worker",
                log_group=log_group,
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
                max_buffer_size=Size.mebibytes(25),
            ),
        )
        grant_table(task.task_role, table, TABLE_READ_WRITE, indexes=[GSI1])
        grant_tenant_objects(task.task_role, bucket, WORKER_OBJECTS)
        task.task_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sqs:ReceiveMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:SendMessage",
                    "sqs:GetQueueAttributes",
                ],
                resources=[run_queue.queue_arn],
            )
        )
        task.task_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[run_dead_letters.queue_arn])
        )
        task.task_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"], resources=[provider_keys.secret_arn]
            )
        )
        # Bedrock models are called with the task role (Converse and ConverseStream are
        # authorized as InvokeModel and InvokeModelWithResponseStream), only the configured
        # families, in any region a cross-region inference profile routes to.
        task.task_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                resources=[
                    arn
                    for family in config.bedrock_families
                    for arn in (
                        f"arn:{Aws.PARTITION}:bedrock:*::foundation-model/{family}*",
                        # Cross-region profiles are named <geo>.<model id>.
                        f"arn:{Aws.PARTITION}:bedrock:*:{Aws.ACCOUNT_ID}"
                        f":inference-profile/*.{family}*",
                    )
                ],
            )
        )
        # Task scale-in protection goes through the ECS agent's endpoint inside the task
        # ($ECS_AGENT_URI/task-protection/v1/state), which signs with the task role:
        # ecs:UpdateTaskProtection on this cluster's tasks.
        task.task_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"],
                resources=[
                    f"arn:{Aws.PARTITION}:ecs:{Aws.REGION}:{Aws.ACCOUNT_ID}:task/"
                    f"{cluster.cluster_name}/*"
                ],
            )
        )

        # No desired_count: CloudFormation then keeps the count autoscaling set, so a
        # deploy never resets it (the service starts at min_capacity).
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=task,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=Duration.seconds(60),
            vpc_subnets=placement,
            security_groups=[task_security_group],
            # Without NAT gateways the tasks need a public address to reach the providers;
            # their security group admits nothing from the internet.
            assign_public_ip=not private,
        )

        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=self.vpc,
            internet_facing=config.alb_internet_facing,
            vpc_subnets=(
                ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
                if config.alb_internet_facing
                else placement
            ),
            security_group=alb_security_group,
            # Above the worker's sync deadline; streams also send heartbeats.
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
                open=False,
            )
            # The DNS record for worker_domain_name (an alias to the load balancer) is
            # managed outside this app, which makes no hosted-zone lookups. API Gateway
            # verifies the certificate against this name and routes by the ALB's ARN.
            host = config.worker_domain_name
            self.listener_port = 443
        else:
            if config.plain_http_over_internet:
                Annotations.of(self).add_warning_v2(HTTP_LISTENER_WARNING_ID, HTTP_LISTENER_WARNING)
            listener = self.load_balancer.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=False
            )
            host = self.load_balancer.load_balancer_dns_name
            self.listener_port = 80
        alb_security_group.add_ingress_rule(
            self.vpc_link_security_group,
            ec2.Port.tcp(self.listener_port),
            "API Gateway's VPC link",
        )
        if config.alb_internet_facing:
            # Only what the option is for: calling the worker directly (with an API key);
            # plain HTTP only in a dev stage (StageConfig refuses it elsewhere).
            alb_security_group.add_ingress_rule(
                ec2.Peer.any_ipv4(),
                ec2.Port.tcp(self.listener_port),
                "internet (alb_internet_facing)",
            )
        self.vpc_link_security_group.add_egress_rule(
            alb_security_group, ec2.Port.tcp(self.listener_port), "the worker load balancer"
        )
        self.target_group = listener.add_targets(
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
            # A deregistered task finishes the non-streamed calls it holds (each bounded by
            # the sync deadline); tasks with open streams are not chosen at all, as they
            # hold ECS task scale-in protection until their streams close.
            deregistration_delay=Duration.seconds(config.deregistration_delay_seconds),
        )
        # add_targets opened the tasks to the load balancer's group; workers reach each
        # other's runs on the same port.
        task_security_group.add_ingress_rule(
            task_security_group, ec2.Port.tcp(WORKER_PORT), "workers reach a run's owner"
        )

        scaling = self.service.auto_scale_task_count(
            min_capacity=config.worker_min_count, max_capacity=config.worker_max_count
        )
        scaling.scale_on_request_count(
            "Requests",
            requests_per_target=config.worker_requests_per_target_per_minute,
            target_group=self.target_group,
            scale_in_cooldown=Duration.seconds(300),
            scale_out_cooldown=Duration.seconds(60),
        )
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=config.worker_cpu_target_percent,
            scale_in_cooldown=Duration.seconds(300),
            scale_out_cooldown=Duration.seconds(60),
        )

        self.vpc_link = apigwv2.VpcLink(
            self,
            "VpcLink",
            vpc=self.vpc,
            subnets=placement,
            security_groups=[self.vpc_link_security_group],
        )
        self.worker_host = host
        self.worker_url = f"{config.worker_scheme}://{host}"


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)

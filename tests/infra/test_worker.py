"""The worker stack: VPC, cluster, Fargate service, load balancer and the staged image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Annotations, Match

from infra.stacks.worker import HTTP_LISTENER_WARNING_ID
from tests.infra.conftest import Synth, only, resources


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["Name"]: item["Value"] for item in container["Environment"]}


def _container(synth: Synth) -> dict[str, Any]:
    task = only(synth.raw("worker"), "AWS::ECS::TaskDefinition")
    (container,) = task["ContainerDefinitions"]
    return dict(container)


def test_the_simulator_is_off_unless_the_stage_enables_it(synth: Synth, https_synth: Synth) -> None:
    assert _env(_container(synth))["SWITCHBOARD_SIMULATOR"] == "off"
    assert https_synth.config.simulator == "fallback"
    assert _env(_container(https_synth))["SWITCHBOARD_SIMULATOR"] == "fallback"


def test_vpc_spans_two_azs_with_one_nat_gateway(synth: Synth) -> None:
    template = synth.template("worker")
    template.resource_count_is("AWS::EC2::VPC", 1)
    template.resource_count_is("AWS::EC2::NatGateway", 1)
    subnets = resources(synth.raw("worker"), "AWS::EC2::Subnet")
    assert len(subnets) == 4  # public and private, in each of two AZs


def test_cluster_has_container_insights(synth: Synth) -> None:
    settings = only(synth.raw("worker"), "AWS::ECS::Cluster")["ClusterSettings"]
    assert {"Name": "containerInsights", "Value": "enabled"} in settings


def test_task_definition_runtime_contract(synth: Synth) -> None:
    task = only(synth.raw("worker"), "AWS::ECS::TaskDefinition")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["Cpu"] == "1024"
    assert task["Memory"] == "2048"
    assert task["RuntimePlatform"]["CpuArchitecture"] == "X86_64"

    container = _container(synth)
    assert container["PortMappings"] == [{"ContainerPort": 8000, "Protocol": "tcp"}]
    env = _env(container)
    assert env["SWITCHBOARD_MAX_REQUEST_BYTES"] == str(4 * 1024 * 1024)
    assert env["SWITCHBOARD_KEY_CACHE_SECONDS"] == "5"
    assert "Switchboard-test-State" in json.dumps(env["SWITCHBOARD_TABLE"])
    assert "SwitchboardBucket" in json.dumps(env["SWITCHBOARD_BUCKET"])
    assert env["SWITCHBOARD_CONVERSATION_RETENTION_DAYS"] == "30"
    assert "SWITCHBOARD_INTERNAL_TOKEN" not in env, "the token must never be plain text"
    (secret,) = container["Secrets"]
    assert secret["Name"] == "SWITCHBOARD_INTERNAL_TOKEN"
    assert "SwitchboardInternalToken" in json.dumps(secret["ValueFrom"])
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    # Two descriptors per held stream: 10,000 streams need over 20,000 open files.
    assert container["Ulimits"] == [{"Name": "nofile", "SoftLimit": 65536, "HardLimit": 65536}]


def test_task_role_reads_and_writes_the_table_and_execution_role_reads_the_secret(
    synth: Synth,
) -> None:
    task = only(synth.raw("worker"), "AWS::ECS::TaskDefinition")
    policies = resources(synth.raw("worker"), "AWS::IAM::Policy").values()

    def actions_for(role_ref: dict[str, Any]) -> set[str]:
        found: set[str] = set()
        for policy in policies:
            if role_ref in policy["Properties"]["Roles"]:
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    action = statement["Action"]
                    found.update([action] if isinstance(action, str) else action)
        return found

    task_role = {"Ref": task["TaskRoleArn"]["Fn::GetAtt"][0]}
    assert {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"} <= (
        actions_for(task_role)
    )
    assert {"s3:GetObject*", "s3:PutObject", "s3:DeleteObject*"} <= actions_for(task_role)
    execution_role = {"Ref": task["ExecutionRoleArn"]["Fn::GetAtt"][0]}
    assert "secretsmanager:GetSecretValue" in actions_for(execution_role)


def test_service_rolls_back_failed_deployments_and_autoscales(synth: Synth) -> None:
    service = only(synth.raw("worker"), "AWS::ECS::Service")
    assert service["LaunchType"] == "FARGATE"
    assert service["DesiredCount"] == 2
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }
    assert service["LoadBalancers"][0]["ContainerPort"] == 8000
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"

    target = only(synth.raw("worker"), "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 10)
    policy = only(synth.raw("worker"), "AWS::ApplicationAutoScaling::ScalingPolicy")
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "ECSServiceAverageCPUUtilization"
    )


def test_load_balancer_is_internet_facing_with_the_sse_idle_timeout(synth: Synth) -> None:
    alb = only(synth.raw("worker"), "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert alb["Scheme"] == "internet-facing"
    assert alb["Type"] == "application"
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["idle_timeout.timeout_seconds"] == "300"


def test_target_group_checks_health_on_the_worker_port(synth: Synth) -> None:
    synth.template("worker").has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "Port": 8000,
            "Protocol": "HTTP",
            "TargetType": "ip",
            "HealthCheckPath": "/health",
            "Matcher": {"HttpCode": "200"},
        },
    )


def test_without_a_certificate_the_listener_is_http_and_a_warning_says_why(
    synth: Synth,
) -> None:
    listener = only(synth.raw("worker"), "AWS::ElasticLoadBalancingV2::Listener")
    assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")
    Annotations.from_stack(synth.stacks["worker"]).has_warning(
        "/Switchboard-test-Worker",
        Match.string_like_regexp(f"plain HTTP.*unencrypted.*{HTTP_LISTENER_WARNING_ID}"),
    )


def test_with_a_certificate_the_listener_is_https_and_there_is_no_warning(
    https_synth: Synth,
) -> None:
    listener = only(https_synth.raw("worker"), "AWS::ElasticLoadBalancingV2::Listener")
    assert (listener["Port"], listener["Protocol"]) == (443, "HTTPS")
    assert listener["Certificates"] == [{"CertificateArn": https_synth.config.certificate_arn}]
    Annotations.from_stack(https_synth.stacks["worker"]).has_no_warning(
        "*", Match.string_like_regexp("plain HTTP")
    )


def test_without_nat_gateways_tasks_run_in_public_subnets(https_synth: Synth) -> None:
    template = https_synth.template("worker")
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    service = only(https_synth.raw("worker"), "AWS::ECS::Service")
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "ENABLED"


def _docker_asset_dir(synth: Synth) -> Path:
    outdir = Path(synth.assembly.directory)
    manifest = json.loads((outdir / "Switchboard-test-Worker.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == "containers/worker/Dockerfile"
    return Path(outdir, image["source"]["directory"])


def test_docker_asset_stages_only_services_and_containers(synth: Synth) -> None:
    staged = _docker_asset_dir(synth)
    assert (staged / "containers" / "worker" / "Dockerfile").is_file()
    assert (staged / "services" / "__init__.py").is_file()
    top = {p.name for p in staged.iterdir()}
    assert top <= {"services", "containers", ".dockerignore"}, top
    everything = {part for p in staged.rglob("*") for part in p.relative_to(staged).parts}
    for unwanted in (".venv", "tests", "cdk.out", "node_modules", "__pycache__", ".git"):
        assert unwanted not in everything


def test_run_queues_reach_the_worker(synth: Synth) -> None:
    stateful = synth.raw("stateful")["Resources"]
    queue = stateful["SwitchboardRunQueue"]
    dlq = stateful["SwitchboardRunDeadLetterQueue"]
    assert queue["Type"] == dlq["Type"] == "AWS::SQS::Queue"
    assert queue["DeletionPolicy"] == dlq["DeletionPolicy"] == "Retain"
    redrive = queue["Properties"]["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 1000
    assert redrive["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["SwitchboardRunDeadLetterQueue", "Arn"]
    }
    assert queue["Properties"]["SqsManagedSseEnabled"] is True

    template = synth.raw("worker")
    [task] = [r for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    env = {
        e["Name"]: e["Value"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]
    }
    assert "SWITCHBOARD_RUN_QUEUE_URL" in env and "SWITCHBOARD_RUN_DLQ_URL" in env
    policies = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    actions = {
        a
        for p in policies
        for st in p["Properties"]["PolicyDocument"]["Statement"]
        for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    }
    assert {
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:SendMessage",
    } <= actions
    # Workers reach each other on the worker port (to follow and cancel runs they do not own).
    ingress = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress"
    ]
    assert any(
        i.get("FromPort") == 8000
        and i.get("SourceSecurityGroupId")
        and i["SourceSecurityGroupId"] == i["GroupId"]
        for i in ingress
    ), ingress


def test_provider_keys_and_bedrock_reach_the_worker(synth: Synth) -> None:
    stateful = synth.raw("stateful")["Resources"]
    keys = stateful["SwitchboardProviderKeys"]
    assert keys["Type"] == "AWS::SecretsManager::Secret"
    assert keys["Properties"]["SecretString"] == "{}"  # no key is ever in the template
    template = synth.raw("worker")
    [task] = [r for r in template["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    env = {e["Name"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]}
    assert "SWITCHBOARD_PROVIDER_KEYS_SECRET_ARN" in env
    statements = [
        st
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for st in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    bedrock = [
        st
        for st in statements
        if st["Action"] == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
    ]
    assert len(bedrock) == 1
    assert "secretsmanager:GetSecretValue" in {
        a
        for st in statements
        for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    }

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


def test_no_nat_gateway_by_default_tasks_in_public_subnets_with_public_ips(synth: Synth) -> None:
    template = synth.template("worker")
    template.resource_count_is("AWS::EC2::VPC", 1)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::VPCEndpoint", 0)
    subnets = resources(synth.raw("worker"), "AWS::EC2::Subnet")
    assert len(subnets) == 2  # public, in each of two AZs
    service = only(synth.raw("worker"), "AWS::ECS::Service")
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "ENABLED"
    assert all("Public" in s["Ref"] for s in network["Subnets"])


def test_with_nat_tasks_are_private_and_s3_dynamodb_use_free_gateway_endpoints(
    https_synth: Synth,
) -> None:
    template = https_synth.raw("worker")
    assert len(resources(template, "AWS::EC2::NatGateway")) == 1
    endpoints = resources(template, "AWS::EC2::VPCEndpoint").values()
    services = sorted(json.dumps(e["Properties"]["ServiceName"]) for e in endpoints)
    assert len(services) == 2
    assert "dynamodb" in services[0] and "s3" in services[1]
    assert {e["Properties"]["VpcEndpointType"] for e in endpoints} == {"Gateway"}
    network = only(template, "AWS::ECS::Service")["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert all("Private" in s["Ref"] for s in network["Subnets"])


def test_cluster_has_container_insights(synth: Synth) -> None:
    settings = only(synth.raw("worker"), "AWS::ECS::Cluster")["ClusterSettings"]
    assert {"Name": "containerInsights", "Value": "enabled"} in settings


def test_task_definition_runtime_contract(synth: Synth) -> None:
    task = only(synth.raw("worker"), "AWS::ECS::TaskDefinition")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["Cpu"] == "1024"
    assert task["Memory"] == "2048"
    assert task["RuntimePlatform"]["CpuArchitecture"] == "ARM64"

    container = _container(synth)
    assert container["PortMappings"] == [{"ContainerPort": 8000, "Protocol": "tcp"}]
    env = _env(container)
    assert env["SWITCHBOARD_MAX_REQUEST_BYTES"] == str(4 * 1024 * 1024)
    assert env["SWITCHBOARD_KEY_CACHE_SECONDS"] == "5"
    assert "Switchboard-test-State" in json.dumps(env["SWITCHBOARD_TABLE"])
    assert "SwitchboardBucket" in json.dumps(env["SWITCHBOARD_BUCKET"])
    assert env["SWITCHBOARD_CONVERSATION_RETENTION_DAYS"] == "30"
    assert env["SWITCHBOARD_SYNC_DEADLINE_SECONDS"] == "240"
    # The worker trusts no shared token and no tenant header: nothing of the kind reaches it.
    assert "Secrets" not in container
    assert "INTERNAL_TOKEN" not in json.dumps(container)
    assert container["StopTimeout"] == 120
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    # The event loop writes access lines and metrics to stdout: it never waits on the driver.
    assert container["LogConfiguration"]["Options"]["mode"] == "non-blocking"
    assert container["LogConfiguration"]["Options"]["max-buffer-size"] == "26214400b"  # 25 MiB
    # Two descriptors per held stream: 10,000 streams need over 20,000 open files.
    assert container["Ulimits"] == [{"Name": "nofile", "SoftLimit": 65536, "HardLimit": 65536}]


def test_task_role_reads_and_writes_the_table_and_may_protect_its_own_task(
    synth: Synth,
) -> None:
    task = only(synth.raw("worker"), "AWS::ECS::TaskDefinition")
    policies = resources(synth.raw("worker"), "AWS::IAM::Policy").values()

    def statements_for(role_ref: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            statement
            for policy in policies
            if role_ref in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        ]

    def actions_for(role_ref: dict[str, Any]) -> set[str]:
        found: set[str] = set()
        for statement in statements_for(role_ref):
            action = statement["Action"]
            found.update([action] if isinstance(action, str) else action)
        return found

    task_role = {"Ref": task["TaskRoleArn"]["Fn::GetAtt"][0]}
    assert {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"} <= (
        actions_for(task_role)
    )
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObjectTagging"} <= actions_for(task_role)
    (protection,) = [
        s for s in statements_for(task_role) if "ecs:UpdateTaskProtection" in s["Action"]
    ]
    resource = json.dumps(protection["Resource"])
    assert ":task/" in resource and "Cluster" in resource, resource


def test_service_rolls_back_failed_deployments_and_autoscales_on_requests(synth: Synth) -> None:
    service = only(synth.raw("worker"), "AWS::ECS::Service")
    assert service["LaunchType"] == "FARGATE"
    # No DesiredCount: a deploy keeps the count autoscaling chose instead of resetting it.
    assert "DesiredCount" not in service
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }
    assert service["LoadBalancers"][0]["ContainerPort"] == 8000

    target = only(synth.raw("worker"), "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 10)
    policies = resources(synth.raw("worker"), "AWS::ApplicationAutoScaling::ScalingPolicy")
    metrics = {
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"][
            "PredefinedMetricSpecification"
        ]["PredefinedMetricType"]: p["Properties"]["TargetTrackingScalingPolicyConfiguration"][
            "TargetValue"
        ]
        for p in policies.values()
    }
    assert metrics == {"ALBRequestCountPerTarget": 3000, "ECSServiceAverageCPUUtilization": 60}


def test_load_balancer_is_internal_with_an_idle_timeout_above_the_sync_deadline(
    synth: Synth,
) -> None:
    alb = only(synth.raw("worker"), "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert alb["Scheme"] == "internal"
    assert alb["Type"] == "application"
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert (
        int(attributes["idle_timeout.timeout_seconds"]) == 300 > synth.config.sync_deadline_seconds
    )
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"


def test_security_groups_admit_only_the_hop_before(synth: Synth) -> None:
    template = synth.raw("worker")
    groups = resources(template, "AWS::EC2::SecurityGroup")
    by_description = {
        g["Properties"]["GroupDescription"].split(":")[0]: k for k, g in groups.items()
    }
    link, alb, tasks = (
        by_description["API Gateway VPC link"],
        by_description["Worker load balancer"],
        by_description["Worker tasks"],
    )
    for key in (link, alb, tasks):
        inline = groups[key]["Properties"].get("SecurityGroupIngress", [])
        assert inline == [], f"{key} admits {inline}"  # nothing from a CIDR, the internet
    ingress = [
        r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
    ]

    def sources(group: str) -> set[tuple[str, int]]:
        return {
            (i["SourceSecurityGroupId"]["Fn::GetAtt"][0], i["FromPort"])
            for i in ingress
            if i["GroupId"]["Fn::GetAtt"][0] == group
        }

    assert sources(alb) == {(link, 80)}
    assert sources(tasks) == {(alb, 8000), (tasks, 8000)}
    assert sources(link) == set()
    link_egress = [
        e["Properties"]
        for e in resources(template, "AWS::EC2::SecurityGroupEgress").values()
        if e["Properties"]["GroupId"]["Fn::GetAtt"][0] == link
    ]
    assert [e["DestinationSecurityGroupId"]["Fn::GetAtt"][0] for e in link_egress] == [alb]
    vpc_link = only(template, "AWS::ApiGatewayV2::VpcLink")
    assert vpc_link["SecurityGroupIds"] == [{"Fn::GetAtt": [link, "GroupId"]}]


def test_deregistration_delay_covers_a_sync_call(synth: Synth) -> None:
    group = only(synth.raw("worker"), "AWS::ElasticLoadBalancingV2::TargetGroup")
    attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    delay = int(attributes["deregistration_delay.timeout_seconds"])
    assert delay == 250 >= synth.config.sync_deadline_seconds


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


def test_without_a_certificate_the_internal_listener_is_http_without_a_warning(
    synth: Synth,
) -> None:
    listener = only(synth.raw("worker"), "AWS::ElasticLoadBalancingV2::Listener")
    assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")
    Annotations.from_stack(synth.stacks["worker"]).has_no_warning(
        "*", Match.string_like_regexp("plain HTTP")
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


def _docker_image(synth: Synth) -> dict[str, Any]:
    outdir = Path(synth.assembly.directory)
    manifest = json.loads((outdir / "Switchboard-test-Worker.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == "containers/worker/Dockerfile"
    return dict(image)


def _docker_asset_dir(synth: Synth) -> Path:
    return Path(synth.assembly.directory, _docker_image(synth)["source"]["directory"])


def test_worker_image_is_built_for_graviton(synth: Synth) -> None:
    assert _docker_image(synth)["source"]["platform"] == "linux/arm64"


def test_dev_stage_may_face_the_internet_in_plain_http_with_a_warning(dev_synth: Synth) -> None:
    dev = dev_synth
    alb = only(dev.raw("worker"), "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert alb["Scheme"] == "internet-facing"
    groups = resources(dev.raw("worker"), "AWS::EC2::SecurityGroup").values()
    (alb_group,) = [
        g for g in groups if g["Properties"]["GroupDescription"].startswith("Worker load balancer")
    ]
    assert alb_group["Properties"]["SecurityGroupIngress"][0]["CidrIp"] == "0.0.0.0/0"
    Annotations.from_stack(dev.stacks["worker"]).has_warning(
        "/Switchboard-dev-Worker",
        Match.string_like_regexp(f"plain HTTP.*unencrypted.*{HTTP_LISTENER_WARNING_ID}"),
    )


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

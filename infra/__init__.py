"""The Switchboard CDK app: four stacks built from one typed stage config.

``build`` is the single composition root; ``app.py`` reads the context and calls it, tests
call it with a config of their own.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, Stack, Tags

from infra.config import StageConfig
from infra.stacks import FrontDoorStack, StatefulStack, WorkerStack
from infra.stacks.frontdoor import WorkerEdge
from infra.stacks.observability import ObservabilityStack, Watched

REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["REPO_ROOT", "StageConfig", "build", "stack_name"]


def stack_name(config: StageConfig, part: str) -> str:
    return f"Switchboard-{config.name}-{part}"


def build(app: App, config: StageConfig, *, repo_root: Path = REPO_ROOT) -> dict[str, Stack]:
    """Add the stateful, worker, front-door and observability stacks of one stage.

    The stacks are environment-agnostic (no account, no region, no lookups): they deploy to
    the account and region of the credentials used by ``cdk deploy``.
    """
    stateful = StatefulStack(
        app, stack_name(config, "State"), stack_name=stack_name(config, "State"), config=config
    )
    worker = WorkerStack(
        app,
        stack_name(config, "Worker"),
        stack_name=stack_name(config, "Worker"),
        config=config,
        repo_root=repo_root,
        table=stateful.table,
        bucket=stateful.bucket,
        run_queue=stateful.run_queue,
        run_dead_letters=stateful.run_dead_letters,
        provider_keys=stateful.provider_keys,
    )
    frontdoor = FrontDoorStack(
        app,
        stack_name(config, "FrontDoor"),
        stack_name=stack_name(config, "FrontDoor"),
        config=config,
        repo_root=repo_root,
        table=stateful.table,
        bucket=stateful.bucket,
        admin_key=stateful.admin_key,
        worker=WorkerEdge(
            vpc_link=worker.vpc_link,
            load_balancer=worker.load_balancer,
            url=worker.worker_url,
        ),
    )
    observability = ObservabilityStack(
        app,
        stack_name(config, "Observability"),
        stack_name=stack_name(config, "Observability"),
        config=config,
        watched=Watched(
            api=frontdoor.api,
            functions={
                "gateway": frontdoor.gateway,
                "authorizer": frontdoor.authorizer_function,
                "stream": frontdoor.stream,
            },
            load_balancer=worker.load_balancer,
            target_group=worker.target_group,
            run_queue=stateful.run_queue,
            run_dead_letters=stateful.run_dead_letters,
            cluster_name=worker.cluster.cluster_name,
            service_name=worker.service.service_name,
        ),
    )
    stacks: dict[str, Stack] = {
        "stateful": stateful,
        "worker": worker,
        "frontdoor": frontdoor,
        "observability": observability,
    }
    for stack in stacks.values():
        Tags.of(stack).add("project", "switchboard")
        Tags.of(stack).add("stage", config.name)
    return stacks

"""The deployable units of Switchboard: state, worker, front door."""

from __future__ import annotations

from infra.stacks.frontdoor import FrontDoorStack
from infra.stacks.stateful import StatefulStack
from infra.stacks.worker import WorkerStack

__all__ = ["FrontDoorStack", "StatefulStack", "WorkerStack"]

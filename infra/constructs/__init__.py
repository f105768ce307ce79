"""Reusable building blocks of the Switchboard stacks."""

from __future__ import annotations

from infra.constructs.front_door_function import FrontDoorFunction

__all__ = ["FrontDoorFunction"]

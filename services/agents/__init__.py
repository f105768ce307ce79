"""Agents: declarations (instructions, tools, route, step limit, approvals) run by one loop."""

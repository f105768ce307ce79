"""The built-in agents, one module each (see services.agents.registry)."""

"""Tools the agent can call: one module per tool, collected by tools.registry."""

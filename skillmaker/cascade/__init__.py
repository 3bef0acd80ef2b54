"""The full-stack test of a cascade of skills (``infra/stack.json``)."""

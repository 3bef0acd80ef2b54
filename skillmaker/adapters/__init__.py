"""Adapters: one small module per outside system (git, object store, Docker, AWS, Slack, mail)."""

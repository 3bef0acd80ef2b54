"""One redaction for everything written: credentials in URLs and configured secrets."""

from __future__ import annotations

from skillmaker.domain.redact import redact, secrets_in


def test_credentials_in_urls_are_masked_and_the_rest_kept() -> None:
    text = (
        "git push https://bot:ghp_abc123@github.example/team/infra.git; "
        "clone https://ghp_only_token@host/x.git; ssh://git@github.example/x.git; "
        "s3://bucket/key and file:///tmp/x"
    )
    assert redact(text) == (
        "git push https://bot:***@github.example/team/infra.git; "
        "clone https://***@host/x.git; ssh://git@github.example/x.git; "
        "s3://bucket/key and file:///tmp/x"
    )


def test_configured_secrets_are_masked_wherever_they_appear() -> None:
    env = {
        "SLACK_BOT_TOKEN": "xoxb-1234-secret",
        "SMTP_PASSWORD": "hunter2!",
        "MY_API_SECRET": "s3cr3tvalue",
        "SKILLMAKER_SECRETS": "REGISTRY_KEY",
        "REGISTRY_KEY": "rk-999999",
        "HOME": "/root",
        "SHORT_TOKEN": "abc",
    }
    secrets = secrets_in(env)
    assert set(secrets) == {"xoxb-1234-secret", "hunter2!", "s3cr3tvalue", "rk-999999"}
    said = "token xoxb-1234-secret, password hunter2!, key rk-999999 in /root with abc"
    assert redact(said, secrets) == "token ***, password ***, key *** in /root with abc"

"""Secrets out of everything skillmaker writes: logs, records, reports, messages, errors.

One function, ``redact``, is applied wherever text leaves the process: credentials embedded in
URLs (``https://user:token@host/infra.git``, ``https://token@host/...``) and the values of the
secrets the environment configures become ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MASK = "***"

# scheme://userinfo@ : the userinfo (user, user:password, or a bare token) is the secret.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@", re.I)

SECRET_VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SMTP_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GIT_PASSWORD",
    "GITHUB_TOKEN",
)
"""Variables whose values are secrets; also any variable named ``*_TOKEN``, ``*_PASSWORD`` or
``*_SECRET`` and those listed (comma-separated) in ``SKILLMAKER_SECRETS``."""

SECRETS_VARIABLE = "SKILLMAKER_SECRETS"
_SECRET_SUFFIXES = ("_TOKEN", "_PASSWORD", "_SECRET", "_SECRET_ACCESS_KEY")
_SHORTEST = 4  # shorter values would mask ordinary words


def secrets_in(env: Mapping[str, str]) -> tuple[str, ...]:
    """Give the secret values configured in an environment, longest first."""
    named = {name.strip() for name in env.get(SECRETS_VARIABLE, "").split(",") if name.strip()}
    values = {
        value
        for name, value in env.items()
        if (name in SECRET_VARIABLES or name in named or name.endswith(_SECRET_SUFFIXES))
        and len(value) >= _SHORTEST
    }
    return tuple(sorted(values, key=len, reverse=True))


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, colon, _ = userinfo.partition(":")
    # "user:password" keeps the user (it helps to know who); a bare userinfo may be a token.
    # "git@" (ssh) names no secret.
    shown = f"{user}:{MASK}" if colon else (userinfo if userinfo == "git" else MASK)
    return f"{match.group('scheme')}{shown}@"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Give ``text`` with URL credentials and each of ``secrets`` replaced by ``***``."""
    for secret in secrets:
        if len(secret) >= _SHORTEST:
            text = text.replace(secret, MASK)
    return _URL_CREDENTIALS.sub(_mask_userinfo, text)

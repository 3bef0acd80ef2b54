"""Slack through slack-sdk's Web API client: post a message, upload a file into its thread.

Every failure becomes ``DeliveryError``, marked transient (server error, rate limit, timeout,
refused connection) or permanent (bad token, unknown channel), so the caller decides on retries.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from skillmaker.domain.message import SlackMessage
from skillmaker.retry import DeliveryError

DEFAULT_API_URL = "https://slack.com/api/"
_BAD_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


@dataclass(frozen=True)
class SlackSettings:
    """How to reach Slack: the bot token and the Web API's base URL."""

    token: str
    api_url: str = DEFAULT_API_URL
    timeout_s: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SlackSettings | None:
        """Give the settings of ``SLACK_BOT_TOKEN`` and ``SLACK_API_URL``; none without a token."""
        token = env.get("SLACK_BOT_TOKEN", "").strip()
        if not token:
            return None
        url = env.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL
        return cls(token=token, api_url=url if url.endswith("/") else url + "/")


@dataclass(frozen=True)
class PostedMessage:
    """Where a message landed: the channel's id and the message's timestamp (its id in Slack)."""

    channel_id: str
    ts: str


def _api_failure(exc: SlackApiError, what: str) -> DeliveryError:
    status = int(getattr(exc.response, "status_code", 0) or 0)
    error = str(exc.response.get("error", "")) if exc.response is not None else ""
    if error in _BAD_TOKEN:
        return DeliveryError(f"{what}: Slack refused the token ({error})", transient=False)
    if status >= 500 or status == 429 or error == "ratelimited":
        return DeliveryError(f"{what}: Slack answered HTTP {status} ({error})", transient=True)
    return DeliveryError(f"{what}: Slack refused ({error or f'HTTP {status}'})", transient=False)


def _failure(exc: Exception, what: str) -> DeliveryError:
    if isinstance(exc, SlackApiError):
        return _api_failure(exc, what)
    if isinstance(exc, urllib.error.HTTPError):
        transient = exc.code >= 500 or exc.code == 429
        return DeliveryError(f"{what}: HTTP {exc.code} {exc.reason}", transient=transient)
    if isinstance(exc, urllib.error.URLError):
        return DeliveryError(f"{what}: cannot reach Slack ({exc.reason})", transient=True)
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"{what}: Slack did not answer in time", transient=True)
    # SlackRequestError (the upload URL answered with an error status) and other I/O failures.
    return DeliveryError(f"{what}: {type(exc).__name__}: {exc}", transient=True)


class SlackNotifier:
    """Posts run summaries and uploads reports to Slack."""

    def __init__(self, settings: SlackSettings) -> None:
        self.settings = settings
        # No built-in retry handlers: retries are the caller's, bounded and recorded.
        self._client = WebClient(
            token=settings.token,
            base_url=settings.api_url,
            timeout=settings.timeout_s,
            retry_handlers=[],
        )

    def post(self, message: SlackMessage) -> PostedMessage:
        """Give where the message was posted (``chat.postMessage``)."""
        payload = message.payload()
        try:
            response = self._client.chat_postMessage(
                channel=payload["channel"], text=payload["text"], blocks=payload["blocks"]
            )
        except (SlackClientError, OSError) as exc:
            raise _failure(exc, f"posting to {message.channel}") from exc
        return PostedMessage(channel_id=str(response["channel"]), ts=str(response["ts"]))

    def upload(
        self, path: Path, *, filename: str, title: str, channel_id: str, thread_ts: str | None
    ) -> str:
        """Give the id of a file uploaded to a channel (``files_upload_v2``), in a thread."""
        try:
            response = self._client.files_upload_v2(
                file=path.read_bytes(),
                filename=filename,
                title=title,
                channel=channel_id,
                thread_ts=thread_ts,
            )
        except (SlackClientError, OSError) as exc:
            raise _failure(exc, f"uploading {filename}") from exc
        return str(response["file"]["id"])

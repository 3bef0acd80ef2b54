"""The Slack adapter against a Slack Web API server on 127.0.0.1: delivery and failure kinds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from skillmaker.adapters.slack import DEFAULT_API_URL, SlackNotifier, SlackSettings
from skillmaker.domain.message import SlackMessage
from skillmaker.retry import DeliveryError
from tests.helpers import free_port
from tests.notify.servers import CHANNEL_ID, MESSAGE_TS, SlackServer, silent_server, slack_server

MESSAGE = SlackMessage(
    channel="#skills",
    text="digits v3: passed the gate",
    blocks=({"type": "section", "text": {"type": "mrkdwn", "text": "*digits* v3"}},),
)


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with slack_server() as server:
        yield server


def _notifier(url: str, token: str = "xoxb-test-token", timeout_s: int = 10) -> SlackNotifier:
    return SlackNotifier(SlackSettings(token=token, api_url=url, timeout_s=timeout_s))


def test_posts_a_message_and_uploads_a_file_into_its_thread(
    slack: SlackServer, tmp_path: Path
) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 40)
    notifier = _notifier(slack.url)

    posted = notifier.post(MESSAGE)
    file_id = notifier.upload(
        report, filename="r.pdf", title="Report", channel_id=posted.channel_id, thread_ts=posted.ts
    )

    assert (posted.channel_id, posted.ts) == (CHANNEL_ID, MESSAGE_TS)
    [post] = slack.state.calls_to("chat.postMessage")
    assert post.args["blocks"] == [dict(b) for b in MESSAGE.blocks]
    assert post.args["text"] == MESSAGE.text
    assert slack.state.uploads == {file_id: report.read_bytes()}
    [complete] = slack.state.calls_to("files.completeUploadExternal")
    assert complete.args["thread_ts"] == MESSAGE_TS


def test_a_server_error_is_transient(slack: SlackServer) -> None:
    slack.state.failures.append(503)

    with pytest.raises(DeliveryError) as caught:
        _notifier(slack.url).post(MESSAGE)

    assert caught.value.transient
    assert "HTTP 503" in str(caught.value)


def test_a_bad_token_is_permanent(slack: SlackServer) -> None:
    with pytest.raises(DeliveryError) as caught:
        _notifier(slack.url, token="xoxb-wrong").post(MESSAGE)

    assert not caught.value.transient
    assert "refused the token (invalid_auth)" in str(caught.value)


def test_a_refused_connection_is_transient() -> None:
    with pytest.raises(DeliveryError) as caught:
        _notifier(f"http://127.0.0.1:{free_port()}/api/").post(MESSAGE)

    assert caught.value.transient
    assert "cannot reach Slack" in str(caught.value)


def test_a_server_that_never_answers_times_out_as_transient() -> None:
    with silent_server() as port, pytest.raises(DeliveryError) as caught:
        _notifier(f"http://127.0.0.1:{port}/api/", timeout_s=1).post(MESSAGE)

    assert caught.value.transient
    assert "did not answer in time" in str(caught.value)


def test_settings_come_from_the_environment() -> None:
    assert SlackSettings.from_env({}) is None
    assert SlackSettings.from_env({"SLACK_BOT_TOKEN": " "}) is None
    default = SlackSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1"})
    assert default == SlackSettings(token="xoxb-1", api_url=DEFAULT_API_URL)
    local = SlackSettings.from_env(
        {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_API_URL": "http://127.0.0.1:9/api"}
    )
    assert local is not None and local.api_url == "http://127.0.0.1:9/api/"

"""CloudFormation through boto3: create or update a stack from a template and wait for the result.

Stacks are created and updated directly (``create_stack``/``update_stack``), not through change
sets. A "No updates are to be performed" answer means the stack already runs the template and is
a success. Parameters the stack already has keep their current values (``UsePreviousValue``), so
values an operator set by hand survive a deploy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from skillmaker.domain.release import MAX_TEMPLATE_BODY
from skillmaker.errors import UserError

Action = Literal["created", "updated", "unchanged"]
Outcome = Literal["success", "failure", "in progress"]
Heartbeat = Callable[[], None]
"""Called before each change to the stack and on each poll while waiting; raises to stop."""


_TRANSPORT_ERRORS = (BotoCoreError, ResponseParserError)
"""No usable answer: the endpoint is unreachable, timed out, or answered with something not AWS's."""
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
_CREDENTIAL_VARIABLES = (
    "AWS_ENDPOINT_URL_CLOUDFORMATION",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


class StackError(UserError):
    """CloudFormation refused a request or could not be reached."""


class StackFailedError(StackError):
    """A stack create or update ended in a failed or rolled-back state."""

    def __init__(self, stack: str, status: str, reason: str) -> None:
        self.stack = stack
        self.status = status
        self.reason = reason
        super().__init__(f"stack {stack!r} ended in {status}: {reason}")


@dataclass(frozen=True)
class StackResult:
    """How a deploy ended: what was done, the stack's final status and its outputs."""

    stack: str
    action: Action
    status: str
    outputs: Mapping[str, str] = field(default_factory=dict)


class StackDeployer(Protocol):
    """Something that brings a stack to a template and waits (CloudFormation or a test's fake)."""

    def deploy(
        self,
        stack: str,
        template_body: str,
        template_url: str | None = None,
        *,
        heartbeat: Heartbeat | None = None,
    ) -> StackResult:
        """Give the result once the stack runs the template; raise ``StackError`` if not.

        ``template_url`` (the template uploaded to S3) is sent instead of the body when given.
        ``heartbeat`` is called before each change to the stack and on each poll while waiting
        for it (a deploy lease is renewed there); what it raises stops the deploy.
        """
        ...


def cloudformation_configured(env: Mapping[str, str]) -> bool:
    """Give whether the environment names a CloudFormation endpoint or AWS credentials."""
    return any(env.get(name) for name in _CREDENTIAL_VARIABLES)


def status_outcome(status: str) -> Outcome:
    """Give whether a stack status is a success, a failure, or still moving."""
    if status.endswith("_IN_PROGRESS"):
        return "in progress"
    if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"):
        return "success"
    return "failure"


def _error_code(exc: Exception) -> tuple[str, str]:
    response: Any = getattr(exc, "response", {}) or {}
    error = response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", exc))


_CONNECT_SECONDS = 10.0
_READ_SECONDS = 60.0
_BACKOFF_CAP = 20.0  # botocore's standard retry mode waits at most this long between attempts


def client_config(max_attempts: int, call_limit: float | None = None) -> Config:
    """Give the client's timeouts and retries, so one call with all its retries ends in time.

    Without ``call_limit``: 10 s to connect, 60 s to read, ``max_attempts`` attempts in all (the
    first included, as ``AWS_MAX_ATTEMPTS`` counts them). With it,
    the worst case (every attempt timing out after the longest back-off) fits in ``call_limit``
    seconds: the timeouts shrink first, then the attempts.
    """
    connect, read, attempts = _CONNECT_SECONDS, _READ_SECONDS, max(1, max_attempts)
    if call_limit is not None:
        while True:
            backoff = sum(min(_BACKOFF_CAP, 2.0**i) for i in range(1, attempts))
            each = (call_limit - backoff) / attempts
            if each >= 2.0 or attempts == 1:
                break
            attempts -= 1
        each = max(each, 1.0)
        if each < connect + read:
            connect = min(connect, each / 4)
            read = each - connect
    return Config(
        retries={"total_max_attempts": attempts, "mode": "standard"},
        connect_timeout=connect,
        read_timeout=read,
    )


class CloudFormationStack:
    """Deploys templates to CloudFormation stacks in one region."""

    def __init__(
        self,
        region: str,
        *,
        endpoint_url: str | None = None,
        client: Any = None,
        poll_seconds: float = 5.0,
        timeout_seconds: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
        race_attempts: int = 10,
        max_attempts: int = 6,
        call_limit: float | None = None,
    ) -> None:
        if client is None:
            client = boto3.client(
                "cloudformation",
                region_name=region,
                endpoint_url=endpoint_url,
                config=client_config(max_attempts, call_limit),
            )
        self.client = client
        self.region = region
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep = sleep
        self.race_attempts = race_attempts

    @classmethod
    def from_env(
        cls, region: str, env: Mapping[str, str], *, call_limit: float | None = None
    ) -> CloudFormationStack:
        """Give a deployer that uses the endpoint named in the environment, if any.

        ``call_limit``: the most seconds one call may take with all its retries (see
        ``client_config``), so a call made under a lease ends before the lease does.
        """
        endpoint = env.get("AWS_ENDPOINT_URL_CLOUDFORMATION") or env.get("AWS_ENDPOINT_URL")
        attempts = env.get("AWS_MAX_ATTEMPTS", "")
        return cls(
            region,
            endpoint_url=endpoint or None,
            max_attempts=int(attempts) if attempts.isdigit() and int(attempts) > 0 else 6,
            call_limit=call_limit,
        )

    def _call(self, stack: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            code, message = _error_code(exc)
            raise StackError(f"stack {stack!r}: {method} refused: {code}: {message}") from None
        except _TRANSPORT_ERRORS as exc:
            raise StackError(f"stack {stack!r}: CloudFormation unreachable: {exc}") from None

    def describe(self, stack: str) -> dict[str, Any] | None:
        """Give the stack's description, or None when there is no such stack."""
        try:
            response = self.client.describe_stacks(StackName=stack)
        except ClientError as exc:
            code, message = _error_code(exc)
            if code == "ValidationError" and "does not exist" in message:
                return None
            raise StackError(
                f"stack {stack!r}: describe_stacks refused: {code}: {message}"
            ) from None
        except _TRANSPORT_ERRORS as exc:
            raise StackError(f"stack {stack!r}: CloudFormation unreachable: {exc}") from None
        stacks = response.get("Stacks", [])
        return dict(stacks[0]) if stacks else None

    def outputs(self, stack: str) -> dict[str, str]:
        """Give the stack's outputs by key (empty when there is no such stack)."""
        described = self.describe(stack)
        return _outputs(described) if described else {}

    def _wait(self, stack: str, heartbeat: Heartbeat) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            described = self.describe(stack)
            if described is None:
                raise StackFailedError(stack, "DELETE_COMPLETE", "the stack disappeared")
            status = str(described["StackStatus"])
            if status_outcome(status) != "in progress":
                return described
            if time.monotonic() > deadline:
                raise StackError(
                    f"stack {stack!r}: still {status} after {self.timeout_seconds:.0f} s"
                )
            heartbeat()
            self.sleep(self.poll_seconds)

    def _failure_reason(self, stack: str) -> str:
        """Give the failed resources' reasons of the last operation (events back to its start)."""
        events = self._call(stack, "describe_stack_events", StackName=stack).get("StackEvents", [])
        reasons: list[str] = []
        for event in events:  # newest first
            status = str(event.get("ResourceStatus", ""))
            if status.endswith("FAILED") and event.get("ResourceStatusReason"):
                reasons.append(f"{event.get('LogicalResourceId')}: {event['ResourceStatusReason']}")
            is_stack = event.get("LogicalResourceId") == stack
            if is_stack and status in ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS"):
                break
        return "; ".join(reversed(reasons)) or "no reason given in the stack events"

    def _parameters(self, described: Mapping[str, Any], template_body: str) -> list[dict[str, Any]]:
        """Give the parameters of an update that keeps each one's current value.

        One the new template no longer declares is dropped; one at the template's ``Default`` is
        left out (CloudFormation gives it the Default: the same value); any other is kept by
        ``UsePreviousValue``, CloudFormation's own way, which keeps a ``NoEcho`` value unseen and
        a list's value exactly. The value read back from ``describe_stacks`` is never sent back:
        moto shows a ``CommaDelimitedList`` as a Python list's repr, and resending it made the
        value grow with every deploy (its escapes doubling) until, about 26 deploys into one
        stack, UpdateStack requests passed moto's 50 MB form limit (an HTML 413).
        """
        try:
            doc = YAML(typ="rt").load(template_body)
            declared = dict(doc.get("Parameters") or {})
        except (YAMLError, AttributeError, TypeError, ValueError):
            declared = {}  # an unreadable template is CloudFormation's to refuse
        kept: list[dict[str, Any]] = []
        for parameter in described.get("Parameters", []):
            key = parameter["ParameterKey"]
            if key not in declared:
                continue
            slot = declared[key]
            default = slot.get("Default") if isinstance(slot, Mapping) else None
            if default is not None and parameter.get("ParameterValue") == str(default):
                continue
            kept.append({"ParameterKey": key, "UsePreviousValue": True})
        return kept

    def deploy(
        self,
        stack: str,
        template_body: str,
        template_url: str | None = None,
        *,
        heartbeat: Heartbeat | None = None,
    ) -> StackResult:
        """Give the result once the stack runs the template; raise ``StackError`` if not.

        Another deploy may create or update the same stack at the same moment; the loser of such
        a race waits for the stack to settle and tries again (a bounded number of times). A
        template over ``MAX_TEMPLATE_BODY`` bytes needs ``template_url`` (it uploaded to S3).
        ``heartbeat`` is called before each change to the stack and on each poll while waiting;
        what it raises stops the deploy, the wait too.
        """
        source = {"TemplateURL": template_url} if template_url else {"TemplateBody": template_body}
        if template_url is None and len(template_body.encode()) > MAX_TEMPLATE_BODY:
            raise StackError(
                f"stack {stack!r}: the template is over {MAX_TEMPLATE_BODY} bytes; "
                "CloudFormation takes bigger ones only from S3"
            )
        beat = heartbeat or (lambda: None)
        for _ in range(self.race_attempts):
            described = self.describe(stack)
            if described is not None and status_outcome(str(described["StackStatus"])) == (
                "in progress"
            ):
                described = self._wait(stack, beat)
            try:
                if described is None:
                    return self._create(stack, source, beat)
                return self._update(stack, template_body, source, described, beat)
            except _LostRaceError:
                self.sleep(self.poll_seconds)
        raise StackError(
            f"stack {stack!r}: other deploys kept changing it; gave up after "
            f"{self.race_attempts} attempts"
        )

    def _create(self, stack: str, source: Mapping[str, str], heartbeat: Heartbeat) -> StackResult:
        heartbeat()
        try:
            self.client.create_stack(StackName=stack, Capabilities=_CAPABILITIES, **source)
        except ClientError as exc:
            code, message = _error_code(exc)
            if code == "AlreadyExistsException":
                raise _LostRaceError(message) from None
            raise StackError(f"stack {stack!r}: create_stack refused: {code}: {message}") from None
        except _TRANSPORT_ERRORS as exc:
            raise StackError(f"stack {stack!r}: CloudFormation unreachable: {exc}") from None
        return self._finish(stack, "created", heartbeat)

    def _finish(self, stack: str, action: Action, heartbeat: Heartbeat) -> StackResult:
        """Give the result of a create or update once the stack settles, or raise its failure."""
        final = self._wait(stack, heartbeat)
        status = str(final["StackStatus"])
        if status_outcome(status) != "success":
            raise StackFailedError(stack, status, self._failure_reason(stack))
        return StackResult(stack, action, status, _outputs(final))

    def _runs(self, stack: str, template_body: str) -> bool:
        """Give whether the stack's current template is exactly this text."""
        current = self._call(stack, "get_template", StackName=stack).get("TemplateBody")
        return isinstance(current, str) and current == template_body

    def _update(
        self,
        stack: str,
        template_body: str,
        source: Mapping[str, str],
        described: Mapping[str, Any],
        heartbeat: Heartbeat,
    ) -> StackResult:
        status = str(described["StackStatus"])
        if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"):
            raise StackFailedError(
                stack, status, "its creation failed earlier; delete the stack, then deploy again"
            )
        if self._runs(stack, template_body):
            return StackResult(stack, "unchanged", status, _outputs(described))
        heartbeat()
        try:
            self.client.update_stack(
                StackName=stack,
                Parameters=self._parameters(described, template_body),
                Capabilities=_CAPABILITIES,
                **source,
            )
        except ClientError as exc:
            code, message = _error_code(exc)
            if "No updates are to be performed" in message:
                return StackResult(stack, "unchanged", status, _outputs(described))
            if "_IN_PROGRESS state" in message:
                raise _LostRaceError(message) from None
            raise StackFailedError(stack, status, f"{code}: {message}") from None
        except _TRANSPORT_ERRORS as exc:
            raise StackError(f"stack {stack!r}: CloudFormation unreachable: {exc}") from None
        return self._finish(stack, "updated", heartbeat)


class _LostRaceError(Exception):
    """Another deploy created or is updating the stack right now."""


def _outputs(described: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(o["OutputKey"]): str(o.get("OutputValue", "")) for o in described.get("Outputs", [])
    }

"""The full-stack test: every skill of a cascade served together, each input routed end to end.

All servers start at once through a ``ServerLauncher`` (local processes here; docker compose with
host networking plugs in with the same protocol). Each input goes to the first step and follows the
routing rules; its end-to-end latency is the time from the first request to the last answer. A
step's accuracy is measured on the inputs meant for it: an input that an earlier step sent the wrong
way is also sent to the step directly (untimed), so one weak step does not blur the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from skillmaker.cascade.definition import StackDefinition, check_labels, expected_path, next_step
from skillmaker.domain import metrics
from skillmaker.errors import Problem, ProblemsError, UserError
from skillmaker.evaluation.client import Answer, predict_one, stamp_problems, version
from skillmaker.evaluation.harness import StampMismatchError
from skillmaker.evaluation.launch import (
    LocalProcessLauncher,
    RunningServer,
    ServerLauncher,
    ServerSpec,
    as_spec,
)
from skillmaker.records import STACK, StackRecord, StepResult, write_record


@dataclass(frozen=True)
class StackCase:
    """An input of the full-stack test set: its file and the final answer the cascade should give.

    ``steps`` may name the label expected of each step on the way; otherwise it is worked out from
    the routing rules (``expected_path``).
    """

    key: str
    path: Path
    answer: str
    steps: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Trace:
    """What happened to one input: each step's answer in order, the final label, the latency."""

    answers: dict[str, str | None] = field(default_factory=dict)
    final: str | None = None
    latency_ms: float = 0.0


def _read_cases(cases: Sequence[StackCase]) -> list[bytes]:
    if not cases:
        raise UserError("stack-test: the full-stack test set is empty")
    payloads = []
    for case in cases:
        try:
            payloads.append(case.path.read_bytes())
        except OSError as exc:
            raise UserError(
                f"{case.key}: cannot read {case.path} ({exc.strerror or exc})"
            ) from None
    return payloads


def _expectations(
    definition: StackDefinition, labels: Mapping[str, Sequence[str]], cases: Sequence[StackCase]
) -> list[dict[str, str]]:
    problems: list[Problem] = []
    result: list[dict[str, str]] = []
    for case in cases:
        path = dict(case.steps) or expected_path(definition, labels, case.answer)
        if path is None:
            problems.append(
                Problem(
                    case.key,
                    f"no single step of the cascade gives the final answer {case.answer!r}",
                )
            )
            path = {}
        result.append(path)
    reached = {skill for path in result for skill in path}
    for step in definition.steps:
        if step.skill not in reached:
            problems.append(
                Problem(
                    f"step {step.skill!r}", "no input of the full-stack test set is meant for it"
                )
            )
    if problems:
        raise ProblemsError(problems)
    return result


class _Cascade:
    """Sends inputs through the running servers and checks every answer's stamps."""

    def __init__(
        self,
        definition: StackDefinition,
        servers: Mapping[str, RunningServer],
        client: httpx.AsyncClient,
    ) -> None:
        self.definition = definition
        self.servers = servers
        self.client = client
        self.problems: list[str] = []

    async def ask(self, skill: str, image: bytes) -> Answer:
        server = self.servers[skill]
        answer = await predict_one(self.client, server.url, image, 1)
        for problem in stamp_problems(answer, server.spec.stamp):
            self.problems.append(f"{skill}: {problem}")
        return answer

    async def route(self, image: bytes) -> _Trace:
        trace = _Trace()
        started = time.perf_counter()
        step = self.definition.root
        while True:
            answer = await self.ask(step.skill, image)
            label = answer.labels[0] if answer.ok else None
            trace.answers[step.skill] = label
            if label is None:
                break  # the server could not answer: the input ends here, wrong
            following = next_step(self.definition, step.skill, label)
            if following is None:
                trace.final = label
                break
            step = following
        trace.latency_ms = (time.perf_counter() - started) * 1000.0
        return trace


async def _run(
    definition: StackDefinition,
    servers: Mapping[str, RunningServer],
    payloads: Sequence[bytes],
    expected: Sequence[Mapping[str, str]],
    *,
    concurrency: int,
    warmup: int,
) -> tuple[list[_Trace], list[dict[str, str | None]], list[str]]:
    limits = httpx.Limits(max_connections=concurrency * len(servers) + 4)
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:
        cascade = _Cascade(definition, servers, client)
        for skill in servers:  # warm-up, not measured
            await asyncio.gather(
                *(cascade.ask(skill, payloads[i % len(payloads)]) for i in range(warmup))
            )
        traces: list[_Trace | None] = [None] * len(payloads)
        queue = iter(range(len(payloads)))

        async def worker() -> None:
            for index in queue:
                traces[index] = await cascade.route(payloads[index])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        done = [t for t in traces if t is not None]
        # Steps an input was meant for but never reached: ask them directly, untimed.
        direct: list[dict[str, str | None]] = [{} for _ in payloads]
        for index, (trace, path) in enumerate(zip(done, expected, strict=True)):
            for skill in path:
                if skill not in trace.answers:
                    answer = await cascade.ask(skill, payloads[index])
                    direct[index][skill] = answer.labels[0] if answer.ok else None
    return done, direct, cascade.problems


def run_stack_test(
    definition: StackDefinition,
    servers: Mapping[str, ServerSpec | Path],
    cases: Sequence[StackCase],
    *,
    launcher: ServerLauncher | None = None,
    concurrency: int = 4,
    warmup: int = 4,
    previous: StackRecord | None = None,
    run_dir: Path | None = None,
    say: Callable[[str], None] | None = None,
) -> StackRecord:
    """Give (and, with ``run_dir``, write to ``stack.json``) the full-stack result of a cascade.

    ``servers`` maps each step's skill to its bundle folder, or to a spec (bundle or image, the
    stamp it must answer with); ``previous`` is the last full-stack result of this cascade.
    """
    tell = say or (lambda _message: None)
    missing = [step.skill for step in definition.steps if step.skill not in servers]
    if missing:
        raise UserError(f"stack {definition.name}: no model given for {', '.join(missing)}")
    if concurrency < 1:
        raise UserError(f"stack-test: concurrency must be at least 1 (got {concurrency})")
    payloads = _read_cases(cases)
    specs = [as_spec(step.skill, servers[step.skill]) for step in definition.steps]
    launcher = launcher or LocalProcessLauncher(
        log_dir=None if run_dir is None else run_dir / "logs"
    )
    tell(f"stack-test {definition.name}: starting {len(specs)} model servers together")
    with launcher.start(specs) as running:
        by_skill = {server.spec.name: server for server in running}
        # Routes and expectations need every step's labels, which the servers themselves report.
        labels, problems = asyncio.run(_labels(by_skill))
        wrong_routes = check_labels(definition, labels)
        if wrong_routes:
            raise ProblemsError(
                [Problem(f"stack {definition.name}: {p.where}", p.message) for p in wrong_routes]
            )
        expected = _expectations(definition, labels, cases)
        traces, direct, answered = asyncio.run(
            _run(definition, by_skill, payloads, expected, concurrency=concurrency, warmup=warmup)
        )
        problems.extend(answered)
    if problems:
        shown = "\n".join(f"  {line}" for line in list(dict.fromkeys(problems))[:8])
        raise StampMismatchError(
            f"{len(problems)} answer(s) in the full-stack test carried other versions than the "
            f"model the server was started with:\n{shown}"
        )
    by_stamp = {spec.name: spec.stamp for spec in specs}
    correct = [t.final == c.answer for t, c in zip(traces, cases, strict=True)]
    steps: list[StepResult] = []
    for step in definition.steps:
        hits = total = 0
        for trace, extra, path in zip(traces, direct, expected, strict=True):
            if step.skill in path:
                got = (
                    trace.answers[step.skill]
                    if step.skill in trace.answers
                    else extra.get(step.skill)
                )
                hits += got == path[step.skill]
                total += 1
        stamp = by_stamp[step.skill]
        steps.append(
            StepResult(
                skill=step.skill,
                accuracy=hits / total,
                skill_version=stamp.skill_version,
                code_version=stamp.code_version,
            )
        )
    record = StackRecord(
        end_to_end_accuracy=sum(correct) / len(correct),
        steps=steps,
        latency=metrics.latency([t.latency_ms for t in traces], concurrency),
        inputs=len(cases),
        previous_end_to_end_accuracy=None if previous is None else previous["end_to_end_accuracy"],
    )
    if run_dir is not None:
        write_record(run_dir / STACK, record)
    before = record["previous_end_to_end_accuracy"]
    tell(
        f"stack-test {definition.name}: end-to-end accuracy {record['end_to_end_accuracy']:.4f}"
        + ("" if before is None else f" (last time {before:.4f})")
        + f", p95 {record['latency']['p95']:.1f} ms over {len(cases)} inputs"
    )
    return record


async def _labels(servers: Mapping[str, RunningServer]) -> tuple[dict[str, list[str]], list[str]]:
    """Give each server's class names (from ``/version``) and what is wrong with its stamps."""
    labels: dict[str, list[str]] = {}
    problems: list[str] = []
    async with httpx.AsyncClient(timeout=30.0) as client:
        for skill, server in servers.items():
            answer = await version(client, server.url)
            labels[skill] = answer.labels
            problems.extend(f"{skill}: {p}" for p in stamp_problems(answer, server.spec.stamp))
    return labels, problems

"""JUnit XML of the test harness and the full-stack test, for CI to publish (Jenkins ``junit``).

One test case per class (and per overall check) for ``evaluate``, one per cascade step (and the
end-to-end accuracy) for ``stack-test``. A case fails where a person reading the CI page should
look: a class the candidate never recognises or recognises much worse than the deployed model,
images the server could not answer, an accuracy below the first-model minimum or below the
baseline's. The gate stays the judge of the deploy; these files only show the evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from skillmaker.config.model import GateConfig
from skillmaker.fileio import write_atomic
from skillmaker.records import MetricsRecord, StackRecord

JUNIT_DIR = "junit"


@dataclass(frozen=True)
class Case:
    """One JUnit test case: a failure message makes it fail, a skip message skips it."""

    name: str
    output: str
    failure: str | None = None
    skipped: str | None = None


def suite_xml(suite: str, cases: Sequence[Case]) -> str:
    """Give a JUnit XML document of one test suite."""
    failures = sum(1 for c in cases if c.failure is not None)
    skipped = sum(1 for c in cases if c.skipped is not None and c.failure is None)
    root = Element("testsuites")
    node = SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    for case in cases:
        item = SubElement(node, "testcase", classname=suite, name=case.name)
        if case.failure is not None:
            SubElement(item, "failure", message=case.failure).text = case.failure
        elif case.skipped is not None:
            SubElement(item, "skipped", message=case.skipped)
        SubElement(item, "system-out").text = case.output
    indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="unicode") + "\n"


def evaluate_cases(metrics: MetricsRecord, gate: GateConfig) -> list[Case]:
    """Give the test cases of the harness: overall accuracy, serving errors, one per class."""
    candidate = metrics["candidate"]
    baseline = metrics["baseline"]
    accuracy = float(candidate["accuracy"])
    if baseline is None:
        floor = gate.min_accuracy
        why = f"below the first-model minimum {floor:.4f}"
    else:
        floor = float(baseline["accuracy"]) - gate.accuracy_tolerance
        why = f"below baseline v{baseline['skill_version']} minus the tolerance ({floor:.4f})"
    cases = [
        Case(
            "accuracy",
            f"candidate {accuracy:.4f}"
            + ("" if baseline is None else f", baseline {float(baseline['accuracy']):.4f}"),
            failure=f"accuracy {accuracy:.4f} is {why}" if accuracy < floor else None,
        ),
        Case(
            "served every test image",
            f"{len(metrics['keys'])} images, {candidate['errors']} without an answer",
            failure=f"{candidate['errors']} test image(s) got no answer"
            if candidate["errors"]
            else None,
        ),
    ]
    previous = baseline["per_class"] if baseline is not None else []
    before = {c["label"]: float(c["recall"]) for c in previous}
    for item in candidate["per_class"]:
        label, recall = item["label"], float(item["recall"])
        output = (
            f"precision {item['precision']:.4f} recall {recall:.4f} f1 {item['f1']:.4f} "
            f"support {item['support']}"
        )
        failure = None
        if item["support"] and recall == 0.0:
            failure = f"class {label}: not one of {item['support']} test images recognised"
        elif label in before:
            output += f"; baseline recall {before[label]:.4f}"
            if before[label] - recall > gate.max_class_drop:
                failure = (
                    f"class {label}: recall fell from {before[label]:.4f} to {recall:.4f} "
                    f"(more than {gate.max_class_drop:.4f})"
                )
        cases.append(Case(f"class {label}", output, failure=failure))
    return cases


def stack_cases(record: StackRecord | None, tolerance: float, skipped: str = "") -> list[Case]:
    """Give the test cases of the full-stack test: end to end, and one per cascade step."""
    if record is None:
        return [Case("cascade", skipped, skipped=skipped or "not in a cascade")]
    now = float(record["end_to_end_accuracy"])
    before = record["previous_end_to_end_accuracy"]
    failure = None
    if before is not None and now < float(before) - tolerance:
        failure = f"end-to-end accuracy fell from {float(before):.4f} to {now:.4f}"
    cases = [
        Case(
            "end-to-end accuracy",
            f"{now:.4f} over {record['inputs']} inputs"
            + ("" if before is None else f"; previous {float(before):.4f}"),
            failure=failure,
        )
    ]
    for step in record["steps"]:
        cases.append(
            Case(
                f"step {step['skill']} v{step['skill_version']}",
                f"accuracy {float(step['accuracy']):.4f} (code {step['code_version'][:7]})",
            )
        )
    return cases


def write_junit(run_dir: Path, suite: str, cases: Sequence[Case]) -> Path:
    """Give the JUnit file written for one suite in the run folder (``junit/<suite>.xml``)."""
    path = run_dir / JUNIT_DIR / f"{suite}.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, suite_xml(suite, cases))
    return path

"""Validation of the infra template before it is pushed: FindInMap references, then cfn-lint."""

from __future__ import annotations

from dataclasses import dataclass

from cfnlint.api import ManualArgs, lint

from skillmaker.domain.cfn_template import find_in_map_problems
from skillmaker.errors import Problem, ProblemsError


@dataclass(frozen=True)
class LintFinding:
    """One cfn-lint finding: rule, severity, line and message."""

    rule: str
    severity: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.rule} {self.message}"


def cfn_lint(text: str, region: str) -> list[LintFinding]:
    """Give cfn-lint's findings on a template text for a region."""
    matches = lint(text, config=ManualArgs(regions=[region]))
    return [
        LintFinding(
            rule=str(m.rule.id),
            severity=str(m.rule.severity),
            line=int(m.linenumber),
            message=str(m.message),
        )
        for m in matches
    ]


def validate_template(text: str, where: str, region: str) -> list[LintFinding]:
    """Give cfn-lint's warnings on a valid template; raise a user error listing every error.

    FindInMap references are checked first and by hand, because cfn-lint does not follow them
    inside ECS container definitions.
    """
    problems = find_in_map_problems(text, where)
    findings = cfn_lint(text, region) if not problems else []
    problems.extend(
        Problem(where, f"cfn-lint {finding}") for finding in findings if finding.severity == "error"
    )
    if problems:
        raise ProblemsError(problems)
    return [finding for finding in findings if finding.severity != "error"]

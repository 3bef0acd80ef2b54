"""Time ``build_report`` for a run with 10 classes and one with 250 generated classes.

Prints one JSON line: seconds for each build (Pweave weave + two pdflatex passes + CSV), their page
counts, the ratio of the 250-class build to the 10-class baseline measured in the same run, and
whether the 250-class build met its target of 60 seconds. Run from the repository root:

    PYTHONPATH=. python benchmarks/report_build.py
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from skillmaker.config import load_config
from skillmaker.report import build_report
from skillmaker.resources import examples_dir
from tests.report.sample_run import SampleOptions, class_names, write_sample_run

TARGET_250_S = 60.0


def _pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[1] for line in info.splitlines() if line.startswith("Pages:")))


def _time_build(root: Path, classes: int) -> tuple[float, int]:
    run_dir = write_sample_run(
        root / f"run-{classes}", class_names(classes), SampleOptions(failures=min(40, classes * 2))
    )
    config = load_config(examples_dir() / "digits.json").config
    started = time.perf_counter()
    pdf = build_report(
        run_dir,
        root / f"out-{classes}" / "report.pdf",
        config=config,
        generated_at=datetime.now(UTC),
    )
    seconds = time.perf_counter() - started
    return seconds, _pages(pdf)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        root = Path(tmp)
        for name in ("MPLCONFIGDIR", "IPYTHONDIR"):
            os.environ.setdefault(name, str(root / name.lower()))
        small_s, small_pages = _time_build(root, 10)
        large_s, large_pages = _time_build(root, 250)
    print(
        json.dumps(
            {
                "benchmark": "report_build",
                "classes_10_s": round(small_s, 2),
                "classes_10_pages": small_pages,
                "classes_250_s": round(large_s, 2),
                "classes_250_pages": large_pages,
                "ratio_250_vs_10": round(large_s / small_s, 2),
                "target_250_s": TARGET_250_S,
                "meets_target": large_s < TARGET_250_S,
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Time ``skillmaker new`` against plain cookiecutter rendering the same template, in one run.

Prints one JSON line: {"new_s": median seconds of new, "cookiecutter_s": median seconds of a plain
render, "ratio": new_s / cookiecutter_s, "target": 1.5, "met": bool, "repeats": n}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from cookiecutter.main import cookiecutter

from skillmaker.config import load_config
from skillmaker.resources import examples_dir, template_dir
from skillmaker.scaffold import new_skill, template_context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--config", type=Path, default=examples_dir() / "car.json")
    args = parser.parse_args()

    context = template_context(load_config(args.config).config)
    new_times: list[float] = []
    plain_times: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for index in range(args.repeats + 1):
            # Alternate the two so drift in machine load hits both alike; the first pair warms up.
            start = time.perf_counter()
            new_skill(args.config, root / f"new-{index}" / "skill")
            new_elapsed = time.perf_counter() - start

            start = time.perf_counter()
            cookiecutter(
                str(template_dir()),
                no_input=True,
                extra_context=context,
                output_dir=str(root / f"plain-{index}"),
                default_config={
                    "replay_dir": str(root / "replay"),
                    "cookiecutters_dir": str(root / "cc"),
                },
            )
            plain_elapsed = time.perf_counter() - start
            if index:
                new_times.append(new_elapsed)
                plain_times.append(plain_elapsed)

    new_s = statistics.median(new_times)
    plain_s = statistics.median(plain_times)
    ratio = new_s / plain_s
    print(
        json.dumps(
            {
                "new_s": round(new_s, 4),
                "cookiecutter_s": round(plain_s, 4),
                "ratio": round(ratio, 3),
                "target": 1.5,
                "met": ratio <= 1.5,
                "repeats": args.repeats,
            }
        )
    )


if __name__ == "__main__":
    main()

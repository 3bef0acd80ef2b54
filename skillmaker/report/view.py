"""What the report template shows: the run's records turned into escaped LaTeX pieces.

The Pweave template (``report_templates/skill_report.texw``) is the document: its prose, sections
and layout. Its chunks ask a ``ReportView`` for values, tables and figures; every piece the view
gives back is LaTeX in which each string from config or data went through ``latex.escape``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from skillmaker.config import SkillConfig
from skillmaker.domain.stages import STAGE_NAMES
from skillmaker.records import ClassMetrics, Failure, GateRecord, Latency, ModelResult
from skillmaker.report import analysis, figures
from skillmaker.report.build import INPUT_FILE
from skillmaker.report.inputs import ReportInputs, load_inputs
from skillmaker.report.latex import (
    Tex,
    escape,
    escape_breakable,
    longtable,
    number,
    percent,
    tabular,
)

__all__ = ["ReportView"]

FIGURES = "figures"
# Above this many classes the heat map shows the most confused classes only.
FULL_MATRIX_LIMIT = 30
MOST_CONFUSED = 25
CONFUSED_PAIRS = 20
MAX_FAILURES = 40
MAX_LISTED = 30


def _tt(text: object) -> Tex:
    return Tex(rf"\texttt{{{escape_breakable(text)}}}")


def _hash(text: object) -> Tex:
    # 64 hex digits fit the value column in footnote-size type without breaking.
    return Tex(rf"{{\footnotesize\texttt{{{escape(text)}}}}}")


def _yes_no(value: bool) -> Tex:
    return Tex("yes" if value else "no")


def _verdict(passed: bool) -> Tex:
    return Tex(r"\pass{}" if passed else r"\fail{}")


def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        items: list[tuple[str, str]] = []
        for key, inner in value.items():
            items.extend(_flatten(f"{prefix}.{key}" if prefix else str(key), inner))
        return items
    if isinstance(value, list):
        return [(prefix, ", ".join(str(v) for v in value) if value else "none")]
    if value is None:
        return [(prefix, "none")]
    return [(prefix, str(value))]


@dataclass(frozen=True)
class ReportView:
    """The records of one run, the skill's config (when known) and where figures go."""

    inputs: ReportInputs
    config: SkillConfig | None
    generated_at: datetime
    workdir: Path

    @classmethod
    def load(cls, input_file: str | Path = INPUT_FILE) -> ReportView:
        """Give the view described by the input file that ``build.render_tex`` wrote."""
        path = Path(input_file).absolute()
        raw = json.loads(path.read_text(encoding="utf-8"))
        config = raw.get("config")
        return cls(
            inputs=load_inputs(Path(raw["run_dir"])),
            config=SkillConfig.model_validate_json(json.dumps(config)) if config else None,
            generated_at=datetime.fromisoformat(raw["generated_at"]),
            workdir=path.parent,
        )

    # ----------------------------------------------------------------- small values for prose
    @property
    def labels(self) -> list[str]:
        """Give the class labels in model order."""
        return self.inputs.metrics["labels"]

    @property
    def candidate(self) -> ModelResult:
        """Give the candidate's results."""
        return self.inputs.metrics["candidate"]

    @property
    def baseline(self) -> ModelResult | None:
        """Give the deployed baseline's results, if one was deployed."""
        return self.inputs.metrics["baseline"]

    @property
    def skill(self) -> Tex:
        """Give the skill's name."""
        return escape(self.inputs.run["skill"])

    @property
    def title(self) -> Tex:
        """Give the skill's human title (its name when the config is not known)."""
        return escape(self.config.title if self.config else self.inputs.run["skill"])

    @property
    def pdf_title(self) -> Tex:
        """Give a plain-ASCII title for the PDF's metadata."""
        return Tex(
            f"Model report {self.inputs.run['skill']} version {self.inputs.run['skill_version']}"
        )

    @property
    def version(self) -> Tex:
        """Give the skill version."""
        return Tex(str(int(self.inputs.run["skill_version"])))

    @property
    def code_version(self) -> Tex:
        """Give the short code version (commit)."""
        return _tt(self.inputs.run["code_version"][:12])

    @property
    def generated(self) -> Tex:
        """Give the generation time (the one part of the report that differs between builds)."""
        return escape(self.generated_at.strftime("%Y-%m-%d %H:%M %Z").strip())

    @property
    def accuracy(self) -> Tex:
        """Give the candidate's overall test accuracy."""
        return percent(self.candidate["accuracy"])

    @property
    def top_k(self) -> Tex:
        """Give k of the top-k accuracy."""
        return Tex(str(int(self.candidate["top_k"])))

    @property
    def top_k_accuracy(self) -> Tex:
        """Give the candidate's top-k accuracy."""
        return percent(self.candidate["top_k_accuracy"])

    @property
    def test_images(self) -> Tex:
        """Give the number of test images."""
        return number(len(self.inputs.metrics["truth"]) or self._matrix_total())

    @property
    def class_count(self) -> Tex:
        """Give the number of classes the model knows."""
        return number(len(self.labels))

    def _matrix_total(self) -> int:
        return sum(sum(row) for row in self.candidate["confusion_matrix"])

    # ----------------------------------------------------------------- summary
    def summary_table(self) -> Tex:
        """Give the key figures of the run: accuracy, latency, baseline and gate."""
        cand, base = self.candidate, self.baseline

        rows: list[list[str]] = [
            [
                "Test accuracy",
                percent(cand["accuracy"]),
                percent(base["accuracy"]) if base else Tex("---"),
            ],
            [
                Tex(f"Top-{int(cand['top_k'])} accuracy"),
                percent(cand["top_k_accuracy"]),
                percent(base["top_k_accuracy"]) if base else Tex("---"),
            ],
            [
                Tex("Latency p95 (ms)"),
                number(cand["latency"]["p95"], 1),
                number(base["latency"]["p95"], 1) if base else Tex("---"),
            ],
        ]
        gate, provisional = self._gate_record()
        decision = (
            Tex(r"not decided yet")
            if gate is None
            else Tex(r"\textbf{passed}" if gate["passed"] else r"\textbf{rejected}")
        )
        if provisional:
            decision = Tex(f"{decision} by its rules (the gate stage records it after this report)")
        body = tabular("lrr", ["", "Candidate", "Baseline"], rows)
        baseline = (
            Tex(f"version {int(base['skill_version'])}") if base else Tex("none (first model)")
        )
        return Tex(
            f"{body}\\noindent Baseline: {baseline}. Gate: {decision}. "
            f"Test images: {self.test_images}; classes: {self.class_count}.\n"
        )

    def warnings(self) -> Tex:
        """Give the run's warnings as a list, or nothing."""
        items = self.inputs.run["warnings"]
        if not items:
            return Tex("")
        lines = "\n".join(rf"\item {escape(w)}" for w in items)
        return Tex(
            f"\\paragraph{{Warnings of this run}}\n\\begin{{itemize}}\n{lines}\n\\end{{itemize}}\n"
        )

    # ----------------------------------------------------------------- versions
    def versions_table(self) -> Tex:
        """Give every version and hash needed to reproduce the model."""
        run, audit, train = self.inputs.run, self.inputs.audit, self.inputs.train
        base = self.baseline
        gate = self.inputs.gate
        if base is not None:
            baseline = Tex(f"{int(base['skill_version'])} (code {_tt(base['code_version'][:12])})")
        elif gate is not None and gate["baseline_version"] is not None:
            baseline = Tex(str(int(gate["baseline_version"])))
        else:
            baseline = Tex("none (no model deployed before)")
        rows: list[list[str]] = [["Skill", _tt(run["skill"])]]
        if self.config is not None:
            rows += [
                ["Title", escape(self.config.title)],
                ["Ticket", escape(self.config.ticket)],
                ["Owner", escape(self.config.owner)],
            ]
        manifest = run["manifest_hash"] or audit["manifest_hash"]
        rows += [
            ["Skill version", self.version],
            ["Code version", _hash(run["code_version"])],
            ["skillmaker version", _tt(run["skillmaker_version"])],
            ["Config hash", _hash(run["config_hash"])],
            ["Data manifest hash", _hash(manifest)],
            ["Split ledger hash", _hash(audit["ledger_hash"])],
            ["Model hash", _hash(self.candidate["model_hash"])],
            ["Baseline version", baseline],
            ["Report generated", self.generated],
        ]
        mismatch = []
        if train["config_hash"] != run["config_hash"]:
            mismatch.append("config hash")
        if train["manifest_hash"] != audit["manifest_hash"]:
            mismatch.append("data manifest hash")
        if train["ledger_hash"] != audit["ledger_hash"]:
            mismatch.append("split ledger hash")
        note = ""
        if mismatch:
            note = (
                r"\noindent\textbf{Warning:} the model was trained with a different "
                + escape(", ".join(mismatch))
                + r" than this run records (see \texttt{train.json}).\par"
                + "\n"
            )
        return Tex(
            tabular(
                r"@{}l>{\raggedright\arraybackslash}p{0.68\linewidth}@{}", ["Item", "Value"], rows
            )
            + note
        )

    def stages_table(self) -> Tex:
        """Give each pipeline stage's outcome so far."""
        stages = self.inputs.run["stages"]
        if not stages:
            return Tex("No stage outcome was recorded yet.\n")
        # Records keep keys sorted; show stages in pipeline order, unknown names last.
        order = {name: index for index, name in enumerate(STAGE_NAMES)}
        names = sorted(stages, key=lambda name: (order.get(name, len(order)), name))
        rows = [
            [
                escape(name),
                escape(stages[name]["outcome"]),
                Tex(analysis.duration(stages[name]["seconds"])),
                escape(stages[name]["message"]) if stages[name]["message"] else Tex("---"),
            ]
            for name in names
        ]
        return tabular(
            r"@{}llr>{\raggedright\arraybackslash}p{0.5\linewidth}@{}",
            ["Stage", "Outcome", "Time", "Message"],
            rows,
        )

    # ----------------------------------------------------------------- data
    def data_summary(self) -> Tex:
        """Give one sentence on the images used and how unbalanced the classes are."""
        audit = self.inputs.audit
        return Tex(
            f"The run used {number(audit['images'])} images of "
            f"{number(len(audit['classes']))} classes. The largest class has "
            f"{number(float(audit['imbalance_ratio']), 1)} times as many images "
            "as the smallest (imbalance ratio)."
        )

    def class_counts_table(self) -> Tex:
        """Give the images of each class in each split, with totals."""
        classes = self.inputs.audit["classes"]
        rows = []
        sums = [0, 0, 0]
        for item in classes:
            counts = item["counts"]
            values = [int(counts["train"]), int(counts["val"]), int(counts["test"])]
            sums = [a + b for a, b in zip(sums, values, strict=True)]
            rows.append([escape_breakable(item["name"]), *map(number, values), number(sum(values))])
        rows.append([Tex(r"\textbf{Total}"), *map(number, sums), number(sum(sums))])
        return longtable(
            r"@{}>{\raggedright\arraybackslash}p{0.5\linewidth}rrrr@{}",
            ["Class", "Train", "Val", "Test", "Total"],
            rows,
        )

    def class_balance_figure(self) -> Tex:
        """Give the class-balance bar chart."""
        classes = self.inputs.audit["classes"]
        path = figures.class_balance(
            [c["name"] for c in classes],
            [
                (int(c["counts"]["train"]), int(c["counts"]["val"]), int(c["counts"]["test"]))
                for c in classes
            ],
            self.workdir / FIGURES / "class-balance.png",
        )
        return self._figure(path, "Images per class and split.", "fig:balance")

    def excluded_table(self) -> Tex:
        """Give the classes left out of training, or a sentence saying none was."""
        excluded = self.inputs.audit["excluded"]
        if not excluded:
            return Tex("No class was excluded.\n")
        rows = [
            [escape_breakable(e["name"]), number(int(e["count"])), escape(e["reason"])]
            for e in excluded
        ]
        return Tex(
            f"{number(len(excluded))} classes were left out:\n"
            + tabular(
                r"@{}>{\raggedright\arraybackslash}p{0.45\linewidth}rl@{}",
                ["Class", "Images", "Reason"],
                rows,
            )
        )

    def quarantine_tables(self) -> Tex:
        """Give the quarantined files counted by reason and the first of them by name."""
        quarantined = self.inputs.audit["quarantined"]
        if not quarantined:
            return Tex("No file was quarantined: every file decoded as an image.\n")
        by_reason = tabular(
            "@{}lr@{}",
            ["Reason", "Files"],
            [
                [escape(reason), number(count)]
                for reason, count in analysis.count_by_reason(quarantined)
            ],
        )
        shown = sorted(quarantined, key=lambda q: (q["reason"], q["key"]))[:MAX_LISTED]
        files = longtable(
            r"@{}>{\raggedright\arraybackslash}p{0.68\linewidth}>{\raggedright\arraybackslash}p{0.27\linewidth}@{}",
            ["File", "Reason"],
            [[_tt(q["key"]), escape(q["reason"])] for q in shown],
        )
        more = (
            f"\\noindent The first {MAX_LISTED} of {number(len(quarantined))} files are listed.\n"
            if len(quarantined) > MAX_LISTED
            else ""
        )
        return Tex(
            f"{number(len(quarantined))} files were quarantined and not used:\n"
            f"{by_reason}{files}{more}"
        )

    def duplicates_table(self) -> Tex:
        """Give the groups of duplicate images merged so they share one split."""
        groups = self.inputs.audit["duplicate_groups"]
        if not groups:
            return Tex("No duplicate images were found.\n")
        exact = sum(1 for g in groups if g["kind"] == "exact")
        near = len(groups) - exact
        shown = sorted(groups, key=lambda g: (-len(g["members"]), g["group"]))[:MAX_LISTED]
        rows = []
        for group in shown:
            members = group["members"]
            listed = ", ".join(members[:4]) + (
                f", ... ({len(members)} in all)" if len(members) > 4 else ""
            )
            rows.append(
                [_tt(group["group"]), escape(group["kind"]), number(len(members)), _tt(listed)]
            )
        table = longtable(
            r"@{}>{\raggedright\arraybackslash}p{0.2\linewidth}lr>{\raggedright\arraybackslash}p{0.5\linewidth}@{}",
            ["Group", "Kind", "Images", "Members"],
            rows,
        )
        more = (
            f"\\noindent The {MAX_LISTED} largest of {number(len(groups))} groups are listed.\n"
            if len(groups) > MAX_LISTED
            else ""
        )
        capped = [c for c in self.inputs.audit.get("largest_duplicates", []) if c["capped"]]
        if capped:
            listed = ", ".join(f"{_tt(c['group'])} ({number(c['size'])})" for c in capped)
            more += (
                "\\noindent Chains of near copies too long to merge whole were split around "
                f"their centres: {listed}.\n"
            )
        return Tex(
            f"{number(len(groups))} groups of duplicate images were merged ({number(exact)} exact, "
            f"{number(near)} near duplicates), so each group sits in one split:\n{table}{more}"
        )

    # ----------------------------------------------------------------- training
    def training_table(self) -> Tex:
        """Give how the model was trained: network, hyperparameters, profile, duration."""
        train, history, config = self.inputs.train, self.inputs.history, self.config
        height, width, channels = [*train["image_size"], 0, 0, 0][:3]
        rows: list[list[str]] = [
            ["Network", _tt(train["network"])],
            ["Hardware profile", escape(train["profile"]) if train["profile"] else Tex("default")],
            ["Batch size", number(int(train["batch_size"]))],
            ["Input size", Tex(f"{int(height)} $\\times$ {int(width)} $\\times$ {int(channels)}")],
            ["Mixed precision", _yes_no(bool(train["mixed_precision"]))],
            ["Distribution strategy", escape(train["strategy"])],
            ["Epochs run", number(int(train["epochs_run"]))],
            ["Kept epoch (best on validation)", number(int(train["best_epoch"]))],
        ]
        if history is not None:
            rows.append(["Stopped early", _yes_no(bool(history["stopped_early"]))])
        rows.append(["Training time", Tex(analysis.duration(train["seconds"]))])
        if config is not None:
            opt = config.train
            rows += [
                ["Weights", _tt(config.model.weights)],
                ["Optimiser", escape(opt.optimizer)],
                ["Learning rate", escape(f"{opt.learning_rate:g}")],
                ["Most epochs", number(opt.epochs)],
                [
                    "Early-stopping patience",
                    Tex(f"{number(opt.early_stopping_patience)} epochs on {_tt(opt.monitor)}"),
                ],
                [
                    "Class weights",
                    escape(
                        opt.class_weights if isinstance(opt.class_weights, str) else "per class"
                    ),
                ],
                ["Dropout", escape(f"{config.model.dropout:g}")],
            ]
            if config.model.fine_tune.top_layers and config.model.fine_tune.epochs:
                fine = config.model.fine_tune
                rows.append(
                    [
                        "Fine-tuning",
                        escape(
                            f"top {fine.top_layers} layers, {fine.epochs} epochs, "
                            f"learning rate x {fine.learning_rate_factor:g}"
                        ),
                    ]
                )
            augment = {
                k: v for k, v in config.augment.model_dump().items() if v not in (None, False)
            }
            rows.append(
                [
                    "Augmentations",
                    escape(
                        ", ".join(
                            f"{k.replace('_', ' ')} {v}" if v is not True else k.replace("_", " ")
                            for k, v in augment.items()
                        )
                        or "none"
                    ),
                ]
            )
        return tabular(
            r"@{}l>{\raggedright\arraybackslash}p{0.55\linewidth}@{}", ["Setting", "Value"], rows
        )

    def hardware_table(self) -> Tex:
        """Give the hardware and library versions the model was trained with."""
        train = self.inputs.train
        rows = [[_tt(k), escape(v)] for k, v in _flatten("", train["hardware"])]
        rows += [[_tt(name), _tt(version)] for name, version in train["libraries"].items()]
        if not rows:
            return Tex("The training stage recorded no hardware details.\n")
        return tabular(
            r"@{}l>{\raggedright\arraybackslash}p{0.6\linewidth}@{}",
            ["Hardware and libraries", ""],
            rows,
        )

    def learning_curves(self) -> Tex:
        """Give the learning curves with the kept epoch marked, or a sentence if none."""
        history = self.inputs.history
        if history is None or not history["epochs"]:
            return Tex("No training history was recorded (\\texttt{history.json} is absent).\n")
        best = int(history["best_epoch"])
        path = figures.learning_curves(
            history["epochs"], best, self.workdir / FIGURES / "learning-curves.png"
        )
        kept = next((e for e in history["epochs"] if int(e["epoch"]) == best), None)
        detail = (
            f" At the kept epoch {best}, validation loss was {number(float(kept['val_loss']))} and "
            f"validation accuracy {percent(kept['val_accuracy'])}."
            if kept
            else ""
        )
        return Tex(
            self._figure(
                path,
                "Loss and accuracy per epoch; the dashed line marks the kept epoch.",
                "fig:curves",
            )
            + detail
            + "\n"
        )

    # ----------------------------------------------------------------- results
    def macro_scores(self) -> Tex:
        """Give the macro-averaged precision, recall and F1."""
        precision, recall, f1 = analysis.macro_average(self.candidate["per_class"])
        return Tex(f"precision {number(precision)}, recall {number(recall)}, F1 {number(f1)}")

    def errors_note(self) -> Tex:
        """Give a sentence on requests the service failed to answer, if any."""
        errors = int(self.candidate["errors"])
        if not errors:
            return Tex("The service answered every test request.")
        return Tex(
            f"\\textbf{{The service failed to answer {number(errors)} test requests}}; "
            "they count as errors."
        )

    def per_class_table(self) -> Tex:
        """Give precision, recall, F1 and support of each class (baseline recall beside, if any)."""
        base = {c["label"]: c for c in self.baseline["per_class"]} if self.baseline else {}
        metrics: dict[str, ClassMetrics] = {c["label"]: c for c in self.candidate["per_class"]}
        header = ["Class", "Precision", "Recall", "F1", "Support"]
        spec = r"@{}>{\raggedright\arraybackslash}p{0.42\linewidth}rrrr"
        if base:
            header += ["Baseline recall"]
            spec += "r"
        rows = []
        for label in self.labels:
            item = metrics.get(label)
            if item is None:
                row = [escape_breakable(label), Tex("---"), Tex("---"), Tex("---"), Tex("0")]
            else:
                row = [
                    escape_breakable(label),
                    number(float(item["precision"])),
                    number(float(item["recall"])),
                    number(float(item["f1"])),
                    number(int(item["support"])),
                ]
            if base:
                row.append(number(float(base[label]["recall"])) if label in base else Tex("---"))
            rows.append(row)
        return longtable(spec + "@{}", header, rows)

    def confusion(self) -> Tex:
        """Give the confusion heat map: whole for few classes, the most confused for many."""
        matrix = self.candidate["confusion_matrix"]
        labels = self.labels
        target = self.workdir / FIGURES / "confusion.png"
        if len(labels) <= FULL_MATRIX_LIMIT:
            path = figures.confusion_heatmap(matrix, labels, target, annotate=len(labels) <= 15)
            caption = (
                "Confusion matrix on the test split "
                "(colour: share of the true class; numbers: images)."
            )
            return self._figure(path, caption, "fig:confusion", width="0.8\\linewidth")
        chosen = analysis.most_confused_classes(matrix, MOST_CONFUSED)
        sub = [[matrix[i][j] for j in chosen] for i in chosen]
        path = figures.confusion_heatmap(
            sub, [labels[i] for i in chosen], target, annotate=True, errors_only=True
        )
        caption = (
            f"The {len(chosen)} most confused of {len(labels)} classes: "
            "red cells count test images "
            "predicted as another class, grey cells the correct ones."
        )
        return self._figure(path, caption, "fig:confusion", width="0.85\\linewidth")

    def confused_pairs_table(self) -> Tex:
        """Give the pairs of classes the candidate mixes up most."""
        pairs = analysis.confused_pairs(self.candidate["confusion_matrix"], CONFUSED_PAIRS)
        if not pairs:
            return Tex("The candidate confused no two classes on the test split.\n")
        labels = self.labels
        rows = [
            [
                escape_breakable(labels[p.true]),
                escape_breakable(labels[p.predicted]),
                number(p.count),
                percent(p.share),
            ]
            for p in pairs
        ]
        return longtable(
            r"@{}>{\raggedright\arraybackslash}p{0.36\linewidth}>{\raggedright\arraybackslash}p{0.36\linewidth}rr@{}",
            ["True class", "Predicted as", "Images", "Share"],
            rows,
        )

    def latency_table(self) -> Tex:
        """Give latency percentiles of the candidate and the baseline."""

        def row(name: str, latency: Latency) -> list[str]:
            return [
                escape(name),
                number(float(latency["p50"]), 1),
                number(float(latency["p95"]), 1),
                number(float(latency["p99"]), 1),
                number(float(latency["mean"]), 1),
                number(int(latency["concurrency"])),
                number(len(latency["samples_ms"])),
            ]

        rows = [row("candidate", self.candidate["latency"])]
        if self.baseline is not None:
            rows.append(row("baseline", self.baseline["latency"]))
        return tabular(
            "@{}lrrrrrr@{}", ["Model", "p50", "p95", "p99", "Mean", "Concurrency", "Requests"], rows
        )

    def latency_figure(self) -> Tex:
        """Give the latency distribution figure."""
        base = self.baseline["latency"]["samples_ms"] if self.baseline else None
        samples = self.candidate["latency"]["samples_ms"]
        if not samples:
            return Tex("No latency samples were recorded.\n")
        path = figures.latency_distribution(samples, base, self.workdir / FIGURES / "latency.png")
        return self._figure(
            path, "Latency of single-image requests (ms); dashed lines mark p95.", "fig:latency"
        )

    # ----------------------------------------------------------------- comparison and gate
    def comparison(self) -> Tex:
        """Give the candidate beside the baseline, or a sentence when there is no baseline."""
        cand, base = self.candidate, self.baseline
        if base is None:
            return Tex(
                "No model of this skill was deployed before, "
                "so there is no baseline to compare with; "
                "the gate holds a first model to the minimum accuracy of the config.\n"
            )
        cand_macro = analysis.macro_average(cand["per_class"])
        base_macro = analysis.macro_average(base["per_class"])

        def change(new: float, old: float, digits: int = 3, scale: float = 1.0) -> Tex:
            delta = (float(new) - float(old)) * scale
            return Tex(f"{'+' if delta >= 0 else '$-$'}{abs(delta):.{digits}f}")

        rows = [
            [
                "Accuracy",
                percent(cand["accuracy"]),
                percent(base["accuracy"]),
                Tex(change(cand["accuracy"], base["accuracy"], 1, 100) + r"\,pt"),
            ],
            [
                f"Top-{int(cand['top_k'])} accuracy",
                percent(cand["top_k_accuracy"]),
                percent(base["top_k_accuracy"]),
                Tex(change(cand["top_k_accuracy"], base["top_k_accuracy"], 1, 100) + r"\,pt"),
            ],
            [
                "Macro F1",
                number(cand_macro[2]),
                number(base_macro[2]),
                change(cand_macro[2], base_macro[2]),
            ],
            [
                "Latency p50 (ms)",
                number(cand["latency"]["p50"], 1),
                number(base["latency"]["p50"], 1),
                change(cand["latency"]["p50"], base["latency"]["p50"], 1),
            ],
            [
                "Latency p95 (ms)",
                number(cand["latency"]["p95"], 1),
                number(base["latency"]["p95"], 1),
                change(cand["latency"]["p95"], base["latency"]["p95"], 1),
            ],
        ]
        table = tabular(
            "@{}lrrr@{}",
            [
                "",
                f"Candidate (v{int(cand['skill_version'])})",
                f"Baseline (v{int(base['skill_version'])})",
                "Change",
            ],
            rows,
        )
        drop = analysis.worst_recall_drop(cand["per_class"], base["per_class"])
        note = ""
        if drop is not None and drop[1] > 0:
            note = (
                f"The largest drop of one class's recall is {number(drop[1])} "
                f"on class {escape(drop[0])}.\n"
            )
        return Tex(table + note)

    def _gate_record(self) -> tuple[GateRecord | None, bool]:
        """Give the gate's record and whether it is provisional (worked out here, not yet run)."""
        if self.inputs.gate is not None or self.config is None:
            return self.inputs.gate, False
        # The gate stage runs after the report; its rules are a pure function of these figures
        # and the config, so the report can show the verdict the gate will give.
        from skillmaker.domain.gate import decide

        return decide(self.inputs.metrics, self.config.gate).to_record(), True

    def gate(self) -> Tex:
        """Give the gate's decision with each rule, or a sentence when the gate has not run."""
        gate, provisional = self._gate_record()
        if gate is None:
            return Tex(
                "The gate has not decided on this version yet (no \\texttt{gate.json} when this "
                "report was built); the comparison above shows the figures it will weigh.\n"
            )
        verdict = "passes" if gate["passed"] else "rejects"
        decision = (
            (
                rf"\textbf{{The gate's rules applied to these figures: it {verdict} the "
                r"candidate.} (The gate stage runs after this report and records the decision; "
                r"a human override would be recorded there.)"
            )
            if provisional
            else r"\textbf{The gate passed the candidate.}"
            if gate["passed"]
            else r"\textbf{The gate rejected the candidate.}"
        )
        override = gate.get("override")
        if override:
            details = ", ".join(f"{k}: {v}" for k, v in sorted(override.items()))
            decision += r" \textbf{Overridden by hand} (" + escape(details) + ")."
        rows = [
            [
                escape(rule["name"]),
                number(rule["candidate"], 4),
                number(rule["baseline"], 4),
                number(rule["limit"], 4),
                _verdict(bool(rule["passed"])),
                escape(rule["reason"]),
            ]
            for rule in gate["rules"]
        ]
        table = longtable(
            r"@{}>{\raggedright\arraybackslash}p{0.16\linewidth}rrrc>{\raggedright\arraybackslash}p{0.33\linewidth}@{}",
            ["Rule", "Candidate", "Baseline", "Limit", "Result", "Reason"],
            rows,
        )
        return Tex(f"{decision}\n{table}")

    # ----------------------------------------------------------------- failures
    def failures(self) -> Tex:
        """Give a gallery of misclassified test images with their Grad-CAM overlays."""
        failures = self.candidate["failures"]
        wrong = self._matrix_total() - sum(
            row[i] for i, row in enumerate(self.candidate["confusion_matrix"])
        )
        if not failures:
            return Tex(
                f"The candidate misclassified {number(wrong)} test images; "
                "no failure images were recorded.\n"
            )
        shown = analysis.failures_by_confidence(failures, MAX_FAILURES)
        which = "The" if len(shown) == len(failures) else f"The {len(shown)} most confident of the"
        intro = (
            f"The candidate misclassified {number(wrong)} of {self.test_images} test images. "
            f"{which} {number(len(failures))} recorded failures are shown, "
            "most confident first: the test image, "
            "then the Grad-CAM overlay of where the model looked.\n\n"
        )
        cells = [self._failure_cell(index, failure) for index, failure in enumerate(shown, 1)]
        body = ""
        for start in range(0, len(cells), 2):
            pair = cells[start : start + 2]
            body += "\\noindent" + "\\hfill".join(pair) + "\\par\\medskip\n"
        return Tex(intro + body)

    def _failure_cell(self, index: int, failure: Failure) -> str:
        image = self._copy_image(failure["image"], f"failure-{index:03d}.png")
        gradcam = self._copy_image(failure["gradcam"], f"failure-{index:03d}-gradcam.png")
        return (
            "\\begin{minipage}[t]{0.48\\linewidth}\\centering\n"
            f"{image}\\hspace{{0.02\\linewidth}}{gradcam}\\\\[2pt]\n"
            "\\raggedright\\footnotesize\n"
            f"true: \\textbf{{{escape_breakable(failure['true'])}}}\\\\\n"
            f"predicted: \\textbf{{{escape_breakable(failure['predicted'])}}} "
            f"({percent(failure['probability'])})\\\\\n"
            f"{_tt(failure['key'])}\n"
            "\\end{minipage}"
        )

    def _copy_image(self, relative: str, name: str) -> str:
        """Give an includegraphics of a run-folder image re-encoded as PNG, or a placeholder box."""
        run_dir = self.inputs.run_dir.resolve()
        source = (run_dir / relative).resolve()
        box = (
            "\\fbox{\\parbox[c][0.4\\linewidth][c]{0.4\\linewidth}"
            "{\\centering\\footnotesize image missing}}"
        )
        if not source.is_relative_to(run_dir) or not source.is_file():
            return box  # never read outside the run folder, whatever the record says
        try:
            with Image.open(source) as picture:
                picture.load()
                converted = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
        except (UnidentifiedImageError, OSError, ValueError):
            return box
        target = self.workdir / FIGURES / name
        target.parent.mkdir(parents=True, exist_ok=True)
        converted.save(target, format="PNG")
        size = "width=0.46\\linewidth,height=0.46\\linewidth,keepaspectratio"
        return f"\\includegraphics[{size}]{{{FIGURES}/{name}}}"

    # ----------------------------------------------------------------- full stack
    def stack(self) -> Tex:
        """Give the full-stack (cascade) result, or a sentence when there is none."""
        stack = self.inputs.stack
        if stack is None:
            return Tex(
                "No full-stack result: this skill is not part of a cascade, "
                "or the stack test has not "
                "run for this version (no \\texttt{stack.json}).\n"
            )
        previous = stack["previous_end_to_end_accuracy"]
        before = (
            f" (previous stack: {percent(previous)})"
            if previous is not None
            else " (no previous stack result)"
        )
        rows = [
            [
                _tt(step["skill"]),
                number(int(step["skill_version"])),
                _tt(step["code_version"][:12]),
                percent(step["accuracy"]),
            ]
            for step in stack["steps"]
        ]
        latency = stack["latency"]
        table = tabular("@{}lrlr@{}", ["Step (skill)", "Version", "Code", "Accuracy"], rows)
        return Tex(
            f"On {number(int(stack['inputs']))} full-stack test inputs the whole cascade was right "
            f"end to end for {percent(stack['end_to_end_accuracy'])}{before}. "
            f"End-to-end latency: p50 {number(float(latency['p50']), 1)}\\,ms, "
            f"p95 {number(float(latency['p95']), 1)}\\,ms.\n{table}"
        )

    # ----------------------------------------------------------------- helpers
    def _figure(self, path: Path, caption: str, label: str, width: str = "\\linewidth") -> Tex:
        relative = path.relative_to(self.workdir).as_posix()
        return Tex(
            "\\begin{figure}[H]\n\\centering\n"
            f"\\includegraphics[width={width}]{{{relative}}}\n"
            f"\\caption{{{caption}}}\\label{{{label}}}\n\\end{{figure}}\n"
        )

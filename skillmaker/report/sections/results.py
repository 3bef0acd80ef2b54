"""The report's results section: per-class scores, confusions and latency."""

from __future__ import annotations

from skillmaker.records import ClassMetrics, Latency
from skillmaker.report import analysis, figures
from skillmaker.report.latex import (
    Tex,
    escape,
    escape_breakable,
    longtable,
    number,
    percent,
    tabular,
)
from skillmaker.report.sections.base import (
    CONFUSED_PAIRS,
    FIGURES,
    FULL_MATRIX_LIMIT,
    MOST_CONFUSED,
    ViewBase,
)


class ResultsSection(ViewBase):
    """The candidate's test results."""

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

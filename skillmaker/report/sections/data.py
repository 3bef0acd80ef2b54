"""The report's data section: images per class and split, what was left out and why."""

from __future__ import annotations

from skillmaker.report import analysis, figures
from skillmaker.report.latex import (
    Tex,
    escape,
    escape_breakable,
    longtable,
    number,
    tabular,
)
from skillmaker.report.sections.base import (
    FIGURES,
    MAX_LISTED,
    ViewBase,
    _tt,
)


class DataSection(ViewBase):
    """Images, classes, quarantined files and duplicates."""

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

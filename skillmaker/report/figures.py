"""The report's figures as PNG files, drawn with matplotlib's object API.

No pyplot and no ``matplotlib.use``: each function builds its own ``Figure`` on an Agg canvas, so
nothing depends on (or changes) a global backend, which Pweave's kernel would otherwise hijack.
Text from data is drawn with mathtext off, so a class called ``$x$`` is drawn as written.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from skillmaker.records import EpochRecord

__all__ = [
    "class_balance",
    "confusion_heatmap",
    "latency_distribution",
    "learning_curves",
    "short_label",
]

DPI = 150
_SPLIT_COLOURS = ("#3b6ea8", "#e3a33b", "#6aa84f")
_CANDIDATE = "#3b6ea8"
_BASELINE = "#9e9e9e"
_STYLE: dict[Any, Any] = {
    "text.parse_math": False,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
}


@contextmanager
def _style() -> Iterator[None]:
    with mpl.rc_context(_STYLE):
        yield


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No metadata: the same data gives the same bytes.
    figure.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def short_label(text: str, width: int = 22) -> str:
    """Give a label cut to ``width`` characters with an ellipsis (for axis ticks only)."""
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def class_balance(names: Sequence[str], counts: Sequence[tuple[int, int, int]], path: Path) -> Path:
    """Give the path of a stacked bar chart of images per class and split (train, val, test).

    Up to 40 classes get one labelled horizontal bar each; more are drawn as sorted vertical bars
    without labels (the table beside it names every class).
    """
    totals = [sum(c) for c in counts]
    order = sorted(range(len(names)), key=lambda i: (-totals[i], names[i]))
    parts = np.array([counts[i] for i in order], dtype=float).reshape(-1, 3)
    with _style():
        if len(names) <= 40:
            figure = Figure(figsize=(6.5, max(1.8, 0.22 * len(names) + 0.9)))
            axes = figure.add_subplot()
            positions = np.arange(len(order))
            left = np.zeros(len(order))
            for column, (split, colour) in enumerate(
                zip(("train", "val", "test"), _SPLIT_COLOURS, strict=True)
            ):
                axes.barh(
                    positions, parts[:, column], left=left, color=colour, label=split, height=0.7
                )
                left += parts[:, column]
            axes.set_yticks(positions, [short_label(names[i]) for i in order])
            axes.invert_yaxis()
            axes.set_xlabel("images")
        else:
            figure = Figure(figsize=(6.5, 2.8))
            axes = figure.add_subplot()
            positions = np.arange(len(order))
            bottom = np.zeros(len(order))
            for column, (split, colour) in enumerate(
                zip(("train", "val", "test"), _SPLIT_COLOURS, strict=True)
            ):
                axes.bar(
                    positions, parts[:, column], bottom=bottom, color=colour, label=split, width=1.0
                )
                bottom += parts[:, column]
            axes.set_xlim(-0.5, len(order) - 0.5)
            axes.set_xticks([])
            axes.set_xlabel(f"{len(order)} classes, most images first")
            axes.set_ylabel("images")
        axes.legend(
            frameon=False, ncols=3, loc="lower right" if len(names) <= 40 else "upper right"
        )
        figure.tight_layout()
        return _save(figure, path)


def learning_curves(epochs: Sequence[EpochRecord], best_epoch: int, path: Path) -> Path:
    """Give the path of loss and accuracy per epoch (train and val), the kept epoch marked."""
    xs = [int(e["epoch"]) for e in epochs]
    fine_tune = [int(e["epoch"]) for e in epochs if e["phase"] == "fine_tune"]
    with _style():
        figure = Figure(figsize=(6.5, 2.6))
        panels = (
            ("loss", [float(e["loss"]) for e in epochs], [float(e["val_loss"]) for e in epochs]),
            (
                "accuracy",
                [float(e["accuracy"]) for e in epochs],
                [float(e["val_accuracy"]) for e in epochs],
            ),
        )
        for position, (title, train, val) in enumerate(panels, 1):
            axes = figure.add_subplot(1, 2, position)
            axes.plot(
                xs,
                train,
                color=_CANDIDATE,
                marker="o",
                markersize=2.5,
                label="train",
            )
            axes.plot(
                xs,
                val,
                color="#d9534f",
                marker="o",
                markersize=2.5,
                label="val",
            )
            if fine_tune:
                axes.axvspan(
                    min(fine_tune) - 0.5,
                    max(fine_tune) + 0.5,
                    color="#f0f0f0",
                    zorder=0,
                    label="fine-tune",
                )
            axes.axvline(
                best_epoch,
                color="#333333",
                linestyle="--",
                linewidth=1,
                label=f"kept (epoch {best_epoch})",
            )
            axes.set_xlabel("epoch")
            axes.set_title(title)
            if position == 1:
                axes.legend(frameon=False, fontsize=7)
        figure.tight_layout()
        return _save(figure, path)


def confusion_heatmap(
    matrix: Sequence[Sequence[int]],
    labels: Sequence[str],
    path: Path,
    *,
    annotate: bool,
    errors_only: bool = False,
) -> Path:
    """Give the path of a heat map of a (sub)matrix of counts (rows: true, columns: predicted).

    By default cells are coloured by their share of the true class. With ``errors_only`` the
    correct predictions are drawn grey and the colour scale spans the mistakes alone, so the most
    confused pairs stand out even among many classes.
    """
    counts = np.array(matrix, dtype=float).reshape(len(labels), len(labels))
    size = len(labels)
    side = min(6.5, max(3.2, 0.26 * size + 1.8))
    with _style():
        figure = Figure(figsize=(side + 0.8, side))
        axes = figure.add_subplot()
        top = 1.0
        if errors_only:
            errors = counts.copy()
            np.fill_diagonal(errors, np.nan)
            top = max(1.0, float(np.nanmax(errors)) if size > 1 else 1.0)
            axes.imshow(
                np.where(np.eye(size, dtype=bool), 1.0, np.nan),
                cmap="Greys",
                vmin=0.0,
                vmax=5.0,
                interpolation="nearest",
            )
            shown = np.where(errors > 0, errors, np.nan)
            image = axes.imshow(shown, cmap="Reds", vmin=0.0, vmax=top, interpolation="nearest")
            scale_label = "wrongly predicted images"
        else:
            totals = counts.sum(axis=1, keepdims=True)
            shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
            image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
            scale_label = "share of the true class"
        ticks = np.arange(size)
        short = [short_label(label, 18) for label in labels]
        font = 8 if size <= 15 else 7
        axes.set_xticks(ticks, short, rotation=90, fontsize=font)
        axes.set_yticks(ticks, short, fontsize=font)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.spines[:].set_visible(False)
        if annotate:
            for i in range(size):
                for j in range(size):
                    if counts[i, j]:
                        if errors_only:
                            dark = i != j and counts[i, j] > 0.6 * top
                        else:
                            dark = counts[i, j] / (counts[i].sum() or 1.0) > 0.6
                        axes.text(
                            j,
                            i,
                            f"{int(counts[i, j])}",
                            ha="center",
                            va="center",
                            fontsize=7 if size <= 15 else 5.5,
                            color="white" if dark else "#222222",
                        )
        bar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.03, label=scale_label)
        if errors_only:
            bar.locator = MaxNLocator(integer=True)
            bar.update_ticks()
        figure.tight_layout()
        return _save(figure, path)


def latency_distribution(
    candidate: Sequence[float], baseline: Sequence[float] | None, path: Path
) -> Path:
    """Give the path of latency histograms (candidate, baseline if any) with p95 marked."""
    series = [("candidate", list(candidate), _CANDIDATE)]
    if baseline:
        series.append(("baseline", list(baseline), _BASELINE))
    values = [v for _, samples, _ in series for v in samples]
    with _style():
        figure = Figure(figsize=(6.5, 2.4))
        axes = figure.add_subplot()
        if values:
            high = float(np.percentile(values, 99.5))
            low = float(min(values))
            bins = [float(edge) for edge in np.linspace(low, max(high, low + 1e-3), 40)]
            for name, samples, colour in series:
                if not samples:
                    continue
                axes.hist(
                    np.clip(samples, low, high), bins=bins, color=colour, alpha=0.6, label=name
                )
                p95 = float(np.percentile(samples, 95))
                axes.axvline(
                    p95, color=colour, linestyle="--", linewidth=1, label=f"{name} p95 {p95:.1f} ms"
                )
            axes.legend(frameon=False, fontsize=7)
        axes.set_xlabel("latency (ms, HTTP, after warm-up)")
        axes.set_ylabel("requests")
        figure.tight_layout()
        return _save(figure, path)

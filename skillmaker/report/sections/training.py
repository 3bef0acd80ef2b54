"""The report's training section: settings, hardware, learning curves."""

from __future__ import annotations

from skillmaker.report import analysis, figures
from skillmaker.report.latex import (
    Tex,
    escape,
    number,
    percent,
    tabular,
)
from skillmaker.report.sections.base import (
    FIGURES,
    ViewBase,
    _flatten,
    _tt,
    _yes_no,
)


class TrainingSection(ViewBase):
    """How the model was trained."""

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

"""Human-readable records of an evaluation: confusion matrix, per-class report, training curves, tables.

Each function writes one file into a folder and returns its path, so jobs can log them as MLflow
artifacts and tests can open them. Matplotlib runs headless (Agg), as on a server or in CI.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay, classification_report

__all__ = [
    "confusion_matrix_png",
    "class_report_files",
    "curves_png",
    "markdown_table",
]


def confusion_matrix_png(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], path: Path, *, title: str
) -> Path:
    """Row-normalised confusion matrix (recall on the diagonal), with counts in the title's context."""
    size = max(5.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=list(labels), normalize="true", values_format=".2f", ax=ax, colorbar=False
    )
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def class_report_files(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], folder: Path
) -> tuple[Path, Path]:
    """scikit-learn's per-class precision/recall/F1 as ``classification_report.json`` and ``.txt``."""
    labels = list(labels)
    as_dict = classification_report(y_true, y_pred, labels=labels, output_dict=True, zero_division=0)
    as_text = classification_report(y_true, y_pred, labels=labels, digits=3, zero_division=0)
    json_path = folder / "classification_report.json"
    text_path = folder / "classification_report.txt"
    json_path.write_text(json.dumps(as_dict, indent=2))
    text_path.write_text(as_text)
    return json_path, text_path


def curves_png(history: Mapping[str, Sequence[float]], path: Path, *, title: str) -> Path:
    """Loss and accuracy per epoch, training and validation side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key in (metric, f"val_{metric}"):
            if key in history:
                ax.plot(np.arange(1, len(history[key]) + 1), history[key], label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_table(frame: pd.DataFrame, *, floatfmt: str = ".3f") -> str:
    """A GitHub-style markdown table (no ``tabulate`` dependency): what benchmarks and jobs print."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "-" if value != value else format(value, floatfmt)  # NaN: nothing measured
        return str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])

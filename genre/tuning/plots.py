"""Plots of a search: the grid's heatmap and Optuna's optimisation history and parameter importances.

Each function writes into a folder and returns the paths, for the search's parent run to log.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["search_heatmap_png", "study_pngs"]


def search_heatmap_png(table: pd.DataFrame, score: str, path: Path, *, title: str) -> Path:
    """Best ``score`` for each pair of values of the two parameters with the most values.

    ``table`` has one row per candidate, a ``param_<name>`` column per searched parameter and the
    ``score`` column. Other parameters are maximised over, so each cell reads "the best this pair
    reached"; with a single parameter the map is one row.
    """
    params = sorted(
        (c for c in table.columns if c.startswith("param_")), key=lambda c: -table[c].astype(str).nunique()
    )
    x = params[0]
    y = params[1] if len(params) > 1 else None
    frame = table.assign(**{c: table[c].astype(str) for c in params})
    grid = (
        frame.pivot_table(index=y, columns=x, values=score, aggfunc="max")
        if y
        else (frame.groupby(x)[score].max().to_frame().T)
    )
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * grid.shape[1] + 3), max(3.0, 0.5 * grid.shape[0] + 2)))
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    for (row, col), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        ax.text(col, row, f"{value:.3f}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=45)
    ax.set_yticks(range(grid.shape[0]), grid.index if y else [score])
    ax.set_xlabel(x.removeprefix("param_"))
    ax.set_ylabel(y.removeprefix("param_") if y else "")
    fig.colorbar(image, ax=ax, label=f"best {score}")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def study_pngs(study: object, folder: Path) -> list[Path]:
    """Optuna's optimisation history and (with two or more finished trials) parameter importances."""
    import optuna
    from optuna.visualization import matplotlib as vis

    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    plots = [("optimization_history.png", vis.plot_optimization_history)]
    if len(finished) >= 2 and len(study.best_params) >= 2:
        plots.append(("param_importances.png", vis.plot_param_importances))
    paths = []
    for name, plot in plots:
        with warnings.catch_warnings():  # Optuna's matplotlib plots are "experimental" since v2.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ax = plot(study)
        fig = ax.figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        paths.append(folder / name)
    return paths

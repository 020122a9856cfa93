"""The champion a main job leaves: the first ``genre main`` registers its best ``filtered`` model.

A person who installs genre and runs the main job should be able to play it a song next. So when the
registry has no ``@champion``, the main job registers the model that cross-validation on the filtered
split's training side ranks first (never a test score), and says which and why. A champion that exists
is never moved by a main job: serving changes only when someone registers or promotes on purpose, and
the main job prints how.
"""

from __future__ import annotations

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from genre import settings
from genre.progress import Progress
from genre.registry import Registration, register

__all__ = ["leave_champion"]

#: The score that ranks the candidates: cross-validation on the training side only.
RANKED_BY = "cv_accuracy"


def leave_champion(
    table: pd.DataFrame, *, progress: Progress, name: str = settings.MODEL_NAME
) -> Registration | None:
    """Register the best ``filtered`` run of a main job's ``table`` as ``name@champion`` if there is none.

    Candidates are the table's ``filtered`` rows, ranked by their cross-validated accuracy on the split's
    training side; a tie goes to the row listed first (the simpler model, in ``genre main``'s order).
    Returns the new registration, or None when a champion exists or no run is a candidate; either way
    ``progress`` gets what happened and the commands to go on with.
    """
    existing = _champion(name)
    candidates = table[table["protocol"] == "filtered"]
    if existing is not None:
        best = _best(candidates) if not candidates.empty else None
        progress.note(
            f"{name}@{settings.CHAMPION} is version {existing} and stays so: a main job never moves it."
            + (
                f" To serve this job's best filtered model ({_label(best)}): genre register --run-id "
                f"{best['run_id']} --alias {settings.CHALLENGER}, try it (models:/{name}@"
                f"{settings.CHALLENGER}), then genre promote {settings.CHALLENGER}; genre promote "
                f"{settings.PREVIOUS} rolls back."
                if best is not None
                else ""
            )
        )
        return None
    if candidates.empty:
        progress.note(
            "no champion registered: these runs have no filtered protocol (GTZAN's artist-aware split), so "
            "nothing says how they do on new artists; genre register --protocol grouped registers one anyway"
        )
        return None
    best = _best(candidates)
    others = ", ".join(
        f"{row['model']} {row[RANKED_BY]:.3f}"
        for _, row in candidates.iterrows()
        if row["run_id"] != best["run_id"]
    )
    reason = (
        f"best filtered {RANKED_BY} (cross-validation on the training side of GTZAN's artist-aware split) "
        f"among this main job's models: {best[RANKED_BY]:.3f}" + (f", against {others}" if others else "")
    )
    registration = register(best["run_id"], name=name, alias=settings.CHAMPION, reason=reason)
    test = best.get("test_accuracy")
    progress.note(
        f"champion: {name} version {registration.version} is {_label(best)}, the {reason}. Its accuracy on "
        f"the 290 test tracks, by artists it never heard: {test:.3f} (looked at after the choice)."
    )
    progress.note(
        "next:\n"
        "  genre predict path/to/song.mp3 [more songs or folders]   # genres of your own music\n"
        "  genre web                                                # a page to drop songs on\n"
        f"  mlflow models serve -m models:/{name}@{settings.CHAMPION} --env-manager local -p 5001"
    )
    return registration


def _champion(name: str) -> str | None:
    """The version ``name@champion`` points at, or None (no such model, or no such alias)."""
    try:
        return MlflowClient().get_model_version_by_alias(name, settings.CHAMPION).version
    except MlflowException:
        return None


def _best(candidates: pd.DataFrame) -> pd.Series:
    """The first row with the highest score (``idxmax`` keeps the first of equals)."""
    return candidates.loc[candidates[RANKED_BY].astype(float).idxmax()]


def _label(row: pd.Series) -> str:
    return f"{row['model']} on {row['features']} (run {row['run_id']})"

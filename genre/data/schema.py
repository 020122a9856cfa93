"""The feature schema: column names, their canonical order and the audio constants behind them.

Everything that reads or writes feature tables goes through these names, so a CSV from Kaggle, a CSV
written by ``genre extract`` and a request to the served model all agree on what a row is. A table
holds one or more *feature sets*, each complete: ``gtzan57`` (Kaggle's 57 librosa features) and
``musicnn`` (the mean and standard deviation of musicnn's 50 MSD tag probabilities over a clip's or a
window's 3-s patches). Their columns always appear in the order of ``FEATURE_SETS``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "SAMPLE_RATE",
    "N_FFT",
    "HOP_LENGTH",
    "WINDOW_SAMPLES",
    "WINDOW_STEP",
    "N_MFCC",
    "FEATURE_COLUMNS",
    "ID_COLUMNS",
    "LABEL_COLUMN",
    "GTZAN_GENRES",
    "MSD_TAGS",
    "MUSICNN_TAGS",
    "MUSICNN_COLUMNS",
    "FEATURE_SETS",
    "FEATURE_CHOICES",
    "feature_columns",
    "resolve_features",
]

#: Audio is loaded at this rate, mono, as librosa's ``load`` does by default (and as GTZAN's clips are).
SAMPLE_RATE = 22050
#: STFT frame and hop sizes used for every spectral feature (librosa's defaults, and Kaggle's).
N_FFT = 2048
HOP_LENGTH = 512
#: Samples in one of Kaggle's "3 sec" windows: a 30-s clip of 661,794 samples cut into 10 such windows.
WINDOW_SAMPLES = 66149
#: Kaggle's windows start every 3 s (66,150 samples), so one sample lies between consecutive windows;
#: only these starts reproduce the CSV's values (measured on the 3-sec rows of the local clips).
WINDOW_STEP = 3 * SAMPLE_RATE
N_MFCC = 20

_STATS = ("mean", "var")
_SPECTRAL = (
    "chroma_stft",
    "rms",
    "spectral_centroid",
    "spectral_bandwidth",
    "rolloff",
    "zero_crossing_rate",
    "harmony",
    "perceptr",
)

#: The 57 features in the order of Kaggle's ``features_30_sec.csv``.
FEATURE_COLUMNS: tuple[str, ...] = (
    *(f"{name}_{stat}" for name in _SPECTRAL for stat in _STATS),
    "tempo",
    *(f"mfcc{i}_{stat}" for i in range(1, N_MFCC + 1) for stat in _STATS),
)

#: Non-feature columns of the GTZAN CSV schema, in file order around the features.
ID_COLUMNS: tuple[str, ...] = ("filename", "length")
LABEL_COLUMN = "label"

#: GTZAN's ten genres, in Kaggle's order.
GTZAN_GENRES: tuple[str, ...] = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)

assert len(FEATURE_COLUMNS) == 57

#: musicnn's 50 Million Song Dataset tags, in the order of its MSD models' outputs (musicnn 0.1.0,
#: ``configuration.MSD_LABELS``).
MSD_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
    "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
    "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip


def _column_name(tag: str) -> str:
    """``Hip-Hop`` -> ``hip_hop``: lowercased, every run of other characters than a-z and 0-9 one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", tag.lower()).strip("_")


#: The tags as they appear in column names (``hip_hop``, ``female_vocalists``, ``00s``).
MUSICNN_TAGS: tuple[str, ...] = tuple(_column_name(tag) for tag in MSD_TAGS)
#: The musicnn feature set: per tag, its mean then its standard deviation over the patches.
MUSICNN_COLUMNS: tuple[str, ...] = tuple(
    f"musicnn_{tag}_{stat}" for tag in MUSICNN_TAGS for stat in ("mean", "std")
)
assert len(set(MUSICNN_COLUMNS)) == 100

#: Every feature set by name, in canonical column order.
FEATURE_SETS: dict[str, tuple[str, ...]] = {"gtzan57": FEATURE_COLUMNS, "musicnn": MUSICNN_COLUMNS}
#: What a ``features`` parameter may say: one set, or ``both``.
FEATURE_CHOICES: dict[str, tuple[str, ...]] = {
    "gtzan57": ("gtzan57",),
    "musicnn": ("musicnn",),
    "both": ("gtzan57", "musicnn"),
}


def resolve_features(features: str | Iterable[str]) -> tuple[str, ...]:
    """Feature set names in canonical order, from ``"both"``, ``"gtzan57,musicnn"`` or a sequence.

    Raises ``ValueError`` naming an unknown set (callers turn it into their layer's error).
    """
    names = [features] if isinstance(features, str) else list(features)
    sets: set[str] = set()
    for name in (part.strip() for item in names for part in item.split(",")):
        if name not in FEATURE_CHOICES:
            raise ValueError(f"unknown feature set {name!r}; choose from {', '.join(FEATURE_CHOICES)}")
        sets.update(FEATURE_CHOICES[name])
    if not sets:
        raise ValueError(f"no feature set given; choose from {', '.join(FEATURE_CHOICES)}")
    return tuple(name for name in FEATURE_SETS if name in sets)


def feature_columns(sets: Iterable[str]) -> list[str]:
    """The columns of the feature sets ``sets``, in canonical order."""
    wanted = set(sets)
    return [column for name, columns in FEATURE_SETS.items() if name in wanted for column in columns]

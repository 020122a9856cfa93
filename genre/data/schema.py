"""The GTZAN feature schema: column names, their canonical order and the audio constants behind them.

Everything that reads or writes feature tables goes through these names, so a CSV from Kaggle, a CSV
written by ``genre extract`` and a request to the served model all agree on what a row is.
"""

from __future__ import annotations

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

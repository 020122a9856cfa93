"""Data: the GTZAN feature schema, validated feature tables (``Dataset``) and the embedded audio set.

The bottom of the flow (data -> features -> models -> evaluation -> training and tuning -> serving):
nothing here imports another layer of genre.
"""

from genre.data.schema import (
    FEATURE_COLUMNS,
    GTZAN_GENRES,
    HOP_LENGTH,
    ID_COLUMNS,
    LABEL_COLUMN,
    N_FFT,
    N_MFCC,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    WINDOW_STEP,
)
from genre.data.tables import EMBEDDED, Dataset, from_frame, load_csv, numeric_features, track_id
from genre.data.taggrams import GTZAN_MUSICNN, SHIPPED_TAGGRAMS

__all__ = [
    "EMBEDDED",
    "FEATURE_COLUMNS",
    "GTZAN_GENRES",
    "GTZAN_MUSICNN",
    "HOP_LENGTH",
    "ID_COLUMNS",
    "LABEL_COLUMN",
    "N_FFT",
    "N_MFCC",
    "SAMPLE_RATE",
    "SHIPPED_TAGGRAMS",
    "WINDOW_SAMPLES",
    "WINDOW_STEP",
    "Dataset",
    "from_frame",
    "load_csv",
    "numeric_features",
    "track_id",
]

"""Batch scoring of a large library on Spark: the served pyfunc over feature rows or audio files."""

from genre.batch.spark import (
    AUDIO_ID,
    DEFAULT_MASTER,
    ERROR_COLUMN,
    PROBABILITY_PREFIX,
    BatchResult,
    find_java,
    score_batch,
    spark_session,
)

__all__ = [
    "AUDIO_ID",
    "DEFAULT_MASTER",
    "ERROR_COLUMN",
    "PROBABILITY_PREFIX",
    "BatchResult",
    "find_java",
    "score_batch",
    "spark_session",
]

"""Features: audio decoding, the 57 GTZAN features of a signal, batch extraction, and data sources.

``gtzan57`` computes Kaggle's 57 features of one signal (``spectrum`` and ``hpss`` are its shared STFT
and its harmonic/percussive split); ``audio`` decodes files and bytes; ``extraction`` runs whole folders
in parallel with a cache and a failures report; ``sources`` turns a job's ``data`` parameter into a
``Dataset``.
"""

from genre.features.audio import AUDIO_EXTENSIONS, SILENCE_PEAK, check_clip, load_audio, load_audio_bytes
from genre.features.extraction import ExtractionResult, extract_paths, find_audio_files, scan_audio
from genre.features.gtzan57 import extract_features, extract_windows, warm_up
from genre.features.sources import embedded_audio, load_data, resolve_audio_paths

__all__ = [
    "AUDIO_EXTENSIONS",
    "SILENCE_PEAK",
    "ExtractionResult",
    "check_clip",
    "embedded_audio",
    "extract_features",
    "extract_paths",
    "extract_windows",
    "find_audio_files",
    "scan_audio",
    "load_audio",
    "load_audio_bytes",
    "load_data",
    "resolve_audio_paths",
    "warm_up",
]

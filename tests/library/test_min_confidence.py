"""``--min-confidence``'s default: the rule in benchmarks/calibration.py that chose it, on probabilities with
known answers, and the default in code matching the figure the docs give with the rule's output."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np

from genre.cli.library_commands import MIN_CONFIDENCE

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("calibration", ROOT / "benchmarks" / "calibration.py")
calibration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(calibration)


def _songs(*groups: tuple[float, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Top probabilities and whether each answer is right, from (probability, right, wrong) groups."""
    confidence = np.concatenate([np.full(right + wrong, p) for p, right, wrong in groups])
    correct = np.concatenate(
        [np.r_[np.ones(right, bool), np.zeros(wrong, bool)] for _, right, wrong in groups]
    )
    return confidence, correct


def test_the_rule_takes_the_largest_threshold_below_which_songs_are_right_less_than_the_share():
    # Below 0.6: right 5 times in 10. From 0.6: right 9 times in 10, so the unsure share rises past 0.7
    # once the threshold takes in enough of them (0.61: (5 + 9) / 20 = 0.7, not below it).
    confidence, correct = _songs((0.45, 5, 5), (0.6, 9, 1), (0.9, 90, 10))
    assert calibration.choose_min_confidence(confidence, correct) == 0.6
    # A song exactly at the threshold is kept, as genre catalog compares (confidence < threshold is unsure).
    assert calibration.choose_min_confidence(confidence, correct, right_below=0.72) == 0.9
    assert calibration.choose_min_confidence(confidence, correct, right_below=0.5) == 0.0


def test_no_threshold_means_nothing_unsure_and_an_empty_group_is_never_chosen():
    right_everywhere = _songs((0.5, 10, 0), (0.8, 10, 0))
    assert calibration.choose_min_confidence(*right_everywhere) == 0.0
    # Wrong songs only at the very top: every threshold up to 0.99 has songs below it that are right.
    assert calibration.choose_min_confidence(*_songs((0.3, 8, 2), (0.995, 0, 5))) == 0.0
    # One wrong song at 0.2, then a gap: from 0.21 to 0.9 it is alone below the threshold (right 0 times
    # in 1), so the largest of them is chosen; higher thresholds take in 50 right songs.
    assert calibration.choose_min_confidence(*_songs((0.2, 0, 1), (0.9, 50, 0))) == 0.9


def test_resampling_the_tracks_counts_every_choice_once():
    confidence, correct = _songs((0.45, 5, 5), (0.6, 9, 1), (0.9, 90, 10))
    counts = calibration.resampled_choices(confidence, correct)
    assert sum(counts.values()) == calibration.RESAMPLES and 0.6 in counts
    assert counts == calibration.resampled_choices(confidence, correct)  # seeded


def test_the_default_in_code_is_the_figure_the_docs_give_from_the_rule():
    docs = (ROOT / "docs" / "library.md").read_text()
    section = docs.split("## Choosing --min-confidence", 1)[1].split("\n## ", 1)[0]
    chosen = re.search(r"the rule chooses\s+\*\*([0-9.]+)\*\*", section)
    assert chosen and float(chosen.group(1)) == MIN_CONFIDENCE
    assert "python benchmarks/calibration.py" in section

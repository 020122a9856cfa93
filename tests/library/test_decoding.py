"""Decoding what libsndfile cannot: M4A and ADTS AAC through PyAV, with the same rules and errors."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from genre.errors import AudioError
from genre.features import load_audio, load_audio_bytes
from tests.library.audio_files import write_audio

SR = 22050


def _tone(seconds: float, hz: float = 440.0, sr: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.4 * np.sin(2 * np.pi * hz * t)
    return np.stack([y, y], axis=1).astype(np.float32)


def _adts(seconds: float, sr: int = 44100) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="adts") as container:
        stream = container.add_stream("aac", rate=sr, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(_tone(seconds, sr=sr).T), format="fltp",
                                           layout="stereo")  # fmt: skip
        frame.sample_rate = sr
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def _dominant_hz(y: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[spectrum.argmax()])


def test_m4a_decodes_from_disk_and_from_bytes_to_the_same_samples(tmp_path):
    path = write_audio(tmp_path / "tone.m4a", _tone(3.0), 44100)
    y = load_audio(path, sr=SR)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / SR - 3.0) < 0.1  # AAC pads a frame or two (encoder delay)
    assert abs(_dominant_hz(y, SR) - 440.0) < 2.0
    assert 0.2 < np.sqrt(np.mean(y[SR:-SR] ** 2)) < 0.35  # a 0.4-peak sine's RMS is 0.28
    assert np.array_equal(load_audio_bytes(path.read_bytes(), sr=SR), y)


def test_adts_aac_decodes(tmp_path):
    (tmp_path / "tone.aac").write_bytes(_adts(2.0))
    y = load_audio(tmp_path / "tone.aac", sr=SR)
    assert abs(len(y) / SR - 2.0) < 0.1 and abs(_dominant_hz(y, SR) - 440.0) < 2.0


def test_long_m4a_is_refused_from_its_header(tmp_path):
    path = write_audio(tmp_path / "long.m4a", _tone(8.0), 44100)
    with pytest.raises(AudioError, match="8.0 s of audio is longer than the limit of 5 s") as caught:
        load_audio_bytes(path.read_bytes(), sr=SR, name="long", max_seconds=5.0)
    assert caught.value.kind == "too_long" and caught.value.subject == "long"


def test_files_neither_decoder_reads_keep_their_errors(tmp_path):
    (tmp_path / "notes.m4a").write_bytes(b"plain text, not a song\n" * 20)
    with pytest.raises(AudioError, match="cannot decode as audio .*libsndfile can read") as caught:
        load_audio(tmp_path / "notes.m4a")
    assert caught.value.kind == "unreadable"
    with pytest.raises(AudioError, match="460 bytes that are not audio libsndfile can decode"):
        load_audio_bytes(b"plain text, not a song\n" * 20, name="row 0")


def test_a_damaged_m4a_is_named_not_a_traceback(tmp_path):
    good = write_audio(tmp_path / "tone.m4a", _tone(2.0), 44100).read_bytes()
    (tmp_path / "cut.m4a").write_bytes(good[:64])
    with pytest.raises(AudioError, match="cut.m4a: an MOV file that FFmpeg cannot decode") as caught:
        load_audio(tmp_path / "cut.m4a")
    assert caught.value.kind == "unreadable"


def test_bytes_naming_other_files_are_never_opened_as_playlists(tmp_path):
    """FFmpeg, left to guess, reads an HLS playlist and opens the files it lists; the format is never
    guessed here, so such bytes are refused like any text."""
    song = write_audio(tmp_path / "song.m4a", _tone(2.0), 44100)
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{song}\n#EXT-X-ENDLIST\n".encode()
    with pytest.raises(AudioError, match="not audio libsndfile can decode"):
        load_audio_bytes(playlist, name="row 0")

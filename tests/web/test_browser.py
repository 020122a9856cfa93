"""The web demo end to end in a real browser: Debian's headless Chromium driven by Playwright.

Marked ``browser`` (not in the default run): ``python -m pytest -m browser``, which ``.ci/run`` does after
installing Chromium and the ``playwright`` package. Browsers cannot be downloaded here, so Playwright
drives the system Chromium (``GENRE_CHROMIUM``, default ``/usr/bin/chromium``); without it the suite is
skipped with that reason.

The model is what ``genre main`` leaves as champion, an SVM on musicnn's features of GTZAN (the taggrams
shipped in the package), registered in a throwaway store and served by the real ``genre web`` command.
With the GTZAN clips beside the repository the test uploads real songs the model never saw (GTZAN's valid
clips are in no taggram file); otherwise synthetic songs.
``GENRE_WEB_SCREENSHOT=docs/web-demo.png`` also writes the README's screenshot there.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
import soundfile as sf

from genre.data.schema import SAMPLE_RATE
from genre.data.synthesis import synthesize_clip
from genre.features import load_data
from genre.registry import register
from genre.settings import GTZAN_MUSICNN as GTZAN_MUSICNN_DATA
from genre.training import train_run
from tests.conftest import GTZAN_AUDIO, use_store
from tests.processes import free_port
from tests.web.test_app import analyse, call

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("GENRE_CHROMIUM", "/usr/bin/chromium"))
BIN = Path(sys.executable).parent
MEDLEY = ("blues", "classical", "rock")


@dataclass(frozen=True)
class Demo:
    url: str
    clip: Path  # one song to upload
    medley: Path  # a longer song: several windows on the timeline
    real: bool  # GTZAN clips, or synthetic ones


def _wav(y: np.ndarray, path: Path) -> Path:
    sf.write(path, y, SAMPLE_RATE)
    return path


def _songs(folder: Path) -> tuple[Path, Path, bool]:
    """A real GTZAN clip and a medley of three GTZAN clips of different genres, or synthetic stand-ins."""
    if all((GTZAN_AUDIO / g / f"{g}.00000.wav").exists() for g in MEDLEY):
        clips = [GTZAN_AUDIO / g / f"{g}.00000.wav" for g in MEDLEY]
        medley = np.concatenate([sf.read(c, dtype="float32")[0] for c in clips])
        return clips[1], _wav(medley, folder / "medley-blues-classical-rock.wav"), True
    rng = np.random.default_rng(7)
    parts = [
        synthesize_clip(c, rng=rng, n_samples=10 * SAMPLE_RATE, sr=SAMPLE_RATE)
        for c in ("drone", "breakbeat")
    ]
    return _wav(parts[0], folder / "drone.wav"), _wav(np.concatenate(parts), folder / "medley.wav"), False


@pytest.fixture(scope="module")
def demo(tmp_path_factory, cache_dir) -> Iterator[Demo]:
    """``genre web`` on a freshly registered stack, on a free loopback port, as the README starts it."""
    root = tmp_path_factory.mktemp("web-browser")
    clip, medley, real = _songs(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_CACHE_DIR", str(cache_dir))
        uri = use_store(root, patch)
        dataset = load_data(GTZAN_MUSICNN_DATA, windows=False, features=("musicnn",))
        trained = train_run("svm", dataset, protocol="filtered", features="musicnn", n_splits=2)
        register(trained.run_id)
    mlflow.set_tracking_uri(None)

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "GENRE_CACHE_DIR": str(cache_dir)}
    log = root / "web.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "genre"), "web", "--port", str(port)],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            try:
                if call(url, "/api/health")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"genre web did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield Demo(url, clip, medley, real)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[browser]')")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set GENRE_CHROMIUM)")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 900, "height": 1100}, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _upload(page, file: Path | dict) -> None:
    """Choose a file as a person would, noting whether the progress state appeared."""
    page.evaluate(
        """() => {
            window.sawBusy = false;
            const status = document.getElementById("status");
            new MutationObserver(() => { if (!status.hidden) window.sawBusy = true; })
                .observe(status, { attributes: true });
        }"""
    )
    page.set_input_files("#file", file)


def _result(page, timeout: float = 180_000) -> None:
    page.wait_for_selector("#result:not([hidden])", timeout=timeout)
    assert page.evaluate("window.sawBusy"), "no progress state was shown while analysing"


def test_upload_a_song_see_its_genre_chart_and_timeline_then_a_bad_file(demo, page, tmp_path):
    page.goto(demo.url)
    page.wait_for_function("document.getElementById('model').textContent.includes('version 1')")

    # A real clip: the genre the API answers for the same bytes, ten bars, the version that answered.
    _upload(page, demo.clip)
    _result(page)
    status, expected = analyse(demo.url, demo.clip.read_bytes(), demo.clip.name)
    assert status == 200
    assert page.text_content("#genre") == expected["genre"]  # shown capitalised by CSS
    if demo.real:
        assert expected["genre"] == "classical"  # classical.00000: unseen by a model with musicnn features
    bars = page.query_selector_all("#chart g.bar")
    assert len(bars) == 10
    shown = {b.get_attribute("data-genre"): float(b.get_attribute("data-probability")) for b in bars}
    assert shown == pytest.approx(expected["probabilities"], abs=1e-4)  # the page writes toFixed(4)
    assert bars[0].get_attribute("data-genre") == expected["genre"]  # most likely first
    widths = [float(b.query_selector("rect:not(.track)").get_attribute("width")) for b in bars]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]
    assert page.inner_text("#model-version") == "genre-classifier version 1 (@champion)"
    shown_tags = [t.get_attribute("data-tag") for t in page.query_selector_all("#tags .tag")]
    assert shown_tags == list(expected["tags"]) and len(shown_tags) == 5  # "sounds like", strongest first
    assert page.is_visible("#tags-box")
    _every_label_is_whole(page)
    # Names as long as a library's own genres ("offbeat_chords" was cut to "fbeat_chords"): drawn whole.
    page.evaluate(
        """() => drawBars(document.getElementById('chart'),
            {offbeat_chords: 0.6, progressive_death_metal: 0.3, 'k-pop': 0.1},
            ['offbeat_chords', 'progressive_death_metal', 'k-pop'], 'offbeat_chords')"""
    )
    _every_label_is_whole(page)

    # Not audio: a plain-words error, no stale result, and the page still answers afterwards.
    _upload(page, {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"dear diary\n" * 50})
    page.wait_for_selector("#error:not([hidden])", timeout=60_000)
    assert page.inner_text("#error-title") == "This file is not audio we can read"
    assert "notes.txt" in page.inner_text("#error-detail")
    assert page.is_hidden("#result")
    page.screenshot(path=str(tmp_path / "error.png"))

    # Too short, from a real WAV of one second.
    buffer = io.BytesIO()
    sf.write(buffer, np.sin(np.linspace(0, 3000, SAMPLE_RATE)).astype(np.float32), SAMPLE_RATE, format="WAV")
    _upload(page, {"name": "blip.wav", "mimeType": "audio/wav", "buffer": buffer.getvalue()})
    page.wait_for_function("document.getElementById('error-title').textContent.includes('too short')")

    # A longer song: one timeline column per window, then the result at phone width.
    _upload(page, demo.medley)
    _result(page)
    assert page.is_hidden("#error")
    status, expected = analyse(demo.url, demo.medley.read_bytes(), demo.medley.name)
    columns = page.query_selector_all("#timeline g.window")
    assert len(columns) == expected["windows"] == len(expected["timeline"]) >= 3
    assert len(page.query_selector_all("#legend span")) == 10
    page.screenshot(path=str(tmp_path / "web-demo.png"), full_page=True)
    if target := os.environ.get("GENRE_WEB_SCREENSHOT"):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "web-demo.png", target)

    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    assert page.evaluate("document.querySelector('#chart svg').getBoundingClientRect().width") <= 375
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)


def _every_label_is_whole(page) -> None:
    """Each bar's genre name lies inside its chart: not cut at the left edge (nor the right)."""
    boxes = page.evaluate(
        """() => { const chart = document.querySelector('#chart svg').getBoundingClientRect();
            return [...document.querySelectorAll('#chart g.bar text:first-child')].map((t) => {
                const box = t.getBoundingClientRect();
                return [t.textContent, box.left - chart.left, chart.right - box.right]; }); }"""
    )
    assert boxes and all(left >= 0 and right >= 0 for _, left, right in boxes), boxes


def test_versions_view_shows_scores_and_links_into_mlflow(demo, page):
    page.goto(demo.url + "/models")
    row = page.wait_for_selector("#versions tr[data-version='1']")
    assert "@champion" in row.inner_text() and "svm" in row.inner_text()
    accuracy = float(row.query_selector("td[data-score='accuracy']").inner_text())
    assert 0.0 < accuracy <= 1.0
    link = row.query_selector("a")
    assert link.get_attribute("href").startswith("http://127.0.0.1:5000/#/experiments/")
    page.click("nav a[href='/']")
    page.wait_for_selector("#drop")


def test_a_song_dropped_on_the_page_is_analysed(demo, page):
    """Drag and drop: a ``drop`` event carrying the file, as the browser fires it."""
    page.goto(demo.url)
    page.wait_for_function("document.getElementById('model').textContent.includes('version 1')")
    page.evaluate(
        """([b64, name]) => {
            window.sawBusy = false;
            const status = document.getElementById("status");
            new MutationObserver(() => { if (!status.hidden) window.sawBusy = true; })
                .observe(status, { attributes: true });
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: "audio/wav" }));
            const drop = document.getElementById("drop");
            const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
            drop.dispatchEvent(new DragEvent("dragover", init));
            drop.dispatchEvent(new DragEvent("drop", init));
        }""",
        [base64.b64encode(demo.clip.read_bytes()).decode(), demo.clip.name],
    )
    _result(page)
    assert page.text_content("#result-file").startswith(demo.clip.name)
    assert len(page.query_selector_all("#chart g.bar")) == 10

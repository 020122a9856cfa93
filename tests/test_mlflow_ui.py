"""What ``genre main`` leaves in the MLflow UI, in a real browser, as a person sees it.

Marked ``browser`` (not in the default run): ``python -m pytest -m browser tests/test_mlflow_ui.py``. Like
the web demo's suite (``tests/web/test_browser.py``), Playwright drives the system Chromium
(``GENRE_CHROMIUM``, default ``/usr/bin/chromium``); without it, or without the ``playwright`` package,
the suite is skipped with that reason.

The fixture works as a user does, with the installed commands, in a throwaway folder with its own SQLite
store: a small ``genre main`` (k-NN and SVM, both protocols, 3 folds, on the embedded synthetic data),
``genre register`` of the cheapest run (k-NN, grouped), then ``mlflow ui`` on a free loopback port. Every
expected value is read back from that store through ``MlflowClient``, never restated here.

What MLflow 3.17's UI needs from a person before it shows these (none of it is a test shortcut):

* the experiment page shows the model-training view only when the sidebar's "Model training" switch is
  on (kept per browser) or the address says ``?workflowType=machine_learning``: MLflow 3.17 ignores the
  experiment's ``mlflow.experimentKind`` tag and opens the GenAI view by default, so the jobs print that
  address (``genre.tracking.runs_url``; ``test_the_link_genre_prints_opens_the_model_training_view``);
* child runs are folded under their parent until its expand button is pressed, and the chart view has
  no chart at all until then (the parent ``main`` run holds no metric);
* the runs table shows no metric column until one is picked in "Columns";
* the Models tab groups score columns by the dataset a score was computed on, so the seed protocol's
  models (scored on the train split) have their scores in another column group than the grouped ones.

``GENRE_MLFLOW_SCREENSHOTS=<folder>`` writes ``mlflow-runs.png``, ``mlflow-chart.png``,
``mlflow-models.png``, ``mlflow-main-run.png``, ``mlflow-registered-model.png`` and
``mlflow-model-version.png`` there (1400 x 900).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModel, Run
from mlflow.entities.model_registry import ModelVersion, RegisteredModel

from genre import settings
from genre.tracking import runs_url
from tests.conftest import use_store
from tests.processes import free_port

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips the suite
    expect = None

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("GENRE_CHROMIUM", "/usr/bin/chromium"))
BIN = Path(sys.executable).parent
_shots = os.environ.get("GENRE_MLFLOW_SCREENSHOTS")
#: Resolved now: the store fixture works in its own folder.
SHOTS = Path(_shots).resolve() if _shots else None
VIEWPORT = {"width": 1400, "height": 900}
#: Generous: the UI server answers slowly on 2 busy cores.
TIMEOUT = 30_000
SCORE = "cv_accuracy_mean"
#: The address of an experiment's model-training view in MLflow 3.17 (see the module docstring).
MODEL_TRAINING = "workflowType=machine_learning"
#: MLflow's assistant panel opens itself on a first visit and covers a third of the page; these are the
#: keys its own close button sets. Cosmetic only: no test looks at or behind the panel.
NO_ASSISTANT = (
    "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
    "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
)


@dataclass(frozen=True)
class Child:
    """A child run of ``main`` as the store holds it."""

    run_id: str
    name: str
    model: str
    protocol: str
    leaky: bool
    score: float  # cv_accuracy_mean


@dataclass(frozen=True)
class Store:
    url: str
    experiment_id: str
    experiment_tags: dict[str, str]
    main: Run
    children: dict[str, Child]  # by run name
    models: dict[str, LoggedModel]  # the children's logged models, by name
    all_model_names: list[str]  # every logged model of the experiment
    registered: RegisteredModel
    version: ModelVersion
    trained: Run  # the training run behind the registered version
    registration: Run  # the run that logged the served model (genre register's own)


def _genre(*args: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(BIN / "genre"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        pytest.fail(f"genre {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _read_store(uri: str, url: str) -> Store:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(settings.EXPERIMENT)
    assert experiment is not None, "genre main left no experiment named genre"
    eid = experiment.experiment_id
    (main,) = client.search_runs([eid], "tags.`genre.job` = 'main'")
    runs = client.search_runs([eid], f"tags.`mlflow.parentRunId` = '{main.info.run_id}'")
    children = {
        r.info.run_name: Child(
            run_id=r.info.run_id,
            name=r.info.run_name,
            model=r.data.tags["genre.model"],
            protocol=r.data.tags["genre.protocol"],
            leaky=r.data.tags.get("genre.leaky") == "true",
            score=r.data.metrics[SCORE],
        )
        for r in runs
    }
    assert len(children) == 4, f"expected knn and svm under two protocols, got {sorted(children)}"
    logged = client.search_logged_models([eid])
    models = {m.name: m for m in logged if m.source_run_id in {c.run_id for c in children.values()}}
    registered = client.get_registered_model(settings.MODEL_NAME)
    (version,) = client.search_model_versions(f"name = '{settings.MODEL_NAME}'")
    trained = client.get_run(version.tags["genre.source_run_id"])
    return Store(
        url=url,
        experiment_id=eid,
        experiment_tags=dict(experiment.tags),
        main=main,
        children=children,
        models=models,
        all_model_names=sorted(m.name for m in logged),
        registered=registered,
        version=version,
        trained=trained,
        registration=client.get_run(version.run_id),
    )


@pytest.fixture(scope="module")
def ui(tmp_path_factory, cache_dir) -> Iterator[Store]:
    """A small ``genre main`` and ``genre register`` in a fresh store, behind ``mlflow ui``."""
    root = tmp_path_factory.mktemp("mlflow-ui")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_CACHE_DIR", str(cache_dir))
        uri = use_store(root, patch)
        env = dict(os.environ)
    mlflow.set_tracking_uri(None)

    # The server starts (about 20 s of imports) while the jobs run: use_store has created the store.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "mlflow-ui.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "mlflow"), "ui", "--backend-store-uri", uri, "--host", "127.0.0.1"]
            + ["--port", str(port), "--workers", "2"],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _genre("-q", "main", "--data", "embedded", "--models", "knn,svm", "--folds", "3", cwd=root, env=env)
        client = MlflowClient(tracking_uri=uri)
        (cheapest,) = client.search_runs(
            [client.get_experiment_by_name(settings.EXPERIMENT).experiment_id],
            "attributes.run_name = 'knn-grouped'",
        )
        _genre("register", "--run-id", cheapest.info.run_id, cwd=root, env=env)
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow ui did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield _read_store(uri, url)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:  # its job runner's consumers take 15 s or so to stop gracefully; the store is thrown away
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if expect is None:
        pytest.skip("the playwright package is not installed (pip install -e '.[browser]')")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set GENRE_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start. The rest keeps a
        # closed network quiet.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    """A fresh browser profile per test: nothing remembered from another test's clicks."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    context.add_init_script(NO_ASSISTANT)
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _shot(page, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name))


def _open_runs(page, ui: Store) -> None:
    """The experiment's runs, in the model-training view, as its address opens them."""
    page.goto(runs_url(ui.experiment_id, ui.url))
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_role("link", name="main", exact=True)).to_be_visible(timeout=TIMEOUT)


def _expand_main(page, ui: Store) -> None:
    """Press the expand button beside ``main`` (an icon without a label: the only button in its cell)."""
    cell = page.get_by_role("gridcell").filter(has=page.get_by_role("link", name="main", exact=True))
    cell.get_by_role("button").click()
    for name in ui.children:
        expect(page.get_by_role("gridcell").get_by_role("link", name=name, exact=True).first).to_be_visible(
            timeout=TIMEOUT
        )


def _row(page, key: str):
    """Both halves (pinned and scrolling) of an AG Grid row: its ``row-id`` is the run's or model's id."""
    return page.locator(f'[role="row"][row-id="{key}"]')


def _column_of(header) -> str:
    """The cells under a column header (their ``col-id`` can be HTML-escaped where the header's is not)."""
    return f'[role="gridcell"][aria-colindex="{header.get_attribute("aria-colindex")}"]'


def _number(text: str) -> float:
    """A number the UI shows. It shows the logged float64 in decimal, possibly shortened, so the tests
    compare it to the logged value within 1e-9 relative: display rounding, not arithmetic."""
    return float(text.strip())


class GenAIViewError(AssertionError):
    """The experiment opened on MLflow's GenAI view."""


class CardCommitError(AssertionError):
    """The model card does not name the commit the training run recorded."""


def test_the_link_genre_prints_opens_the_model_training_view(page, ui):
    """MLflow 3.17 opens an experiment in its GenAI view unless the address (or the browser's last choice)
    says otherwise, whatever the experiment's ``mlflow.experimentKind`` tag: its UI bundle does not read
    the tag. So the jobs print ``runs_url``, and that link must land on the runs of the model-training
    view."""
    assert ui.experiment_tags.get("mlflow.experimentKind") == "custom_model_development"
    page.goto(runs_url(ui.experiment_id, ui.url))
    opened = page.get_by_role("heading", name=re.compile(r"^(Runs|Overview)$"), include_hidden=True)
    expect(opened).to_be_visible(timeout=TIMEOUT)
    if opened.inner_text() != "Runs":
        raise GenAIViewError(f"the link opened {opened.inner_text()!r} at {page.url}, not the runs")
    expect(page.get_by_role("link", name="main", exact=True)).to_be_visible()


def test_runs_table_nests_the_child_runs_under_main_with_their_scores(page, ui):
    _open_runs(page, ui)
    run_names = page.locator('[role="gridcell"][col-id="attributes.`Run Name`"]').get_by_role("link")
    top = [ui.registration.info.run_name, "main"]  # newest first
    expect(run_names).to_have_text(top, timeout=TIMEOUT)  # the children are folded away

    _expand_main(page, ui)
    shown = sorted(run_names.all_inner_texts())
    assert shown == sorted([*top, *ui.children]), shown
    for child in ui.children.values():
        assert re.fullmatch(r"(knn|svm)-(grouped|seed)", child.name)
        assert child.name == f"{child.model}-{child.protocol}"

    page.get_by_role("button", name="Columns").click()
    page.get_by_placeholder("Search columns").fill(SCORE)
    page.get_by_role("dialog").get_by_text(SCORE, exact=True).click()
    page.keyboard.press("Escape")
    header = page.get_by_role("columnheader", name=SCORE, exact=True).first
    expect(header).to_be_visible()
    column = _column_of(header)
    for child in ui.children.values():
        row = _row(page, child.run_id)
        expect(row.get_by_role("link", name=child.name, exact=True).first).to_be_visible()
        cell = row.locator(column)
        expect(cell).to_have_text(re.compile(r"\d"))
        assert _number(cell.inner_text()) == pytest.approx(child.score, rel=1e-9), child.name
    expect(_row(page, ui.main.info.run_id).locator(column)).to_have_text("-")  # the parent holds none

    # Room for the whole score in the picture: fold the sidebar, widen the column by its edge.
    page.get_by_role("button", name="Toggle sidebar").click()
    page.wait_for_timeout(500)  # the sidebar's fold moves the table
    box = header.bounding_box()
    middle = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] - 2, middle)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] + 80, middle, steps=5)
    page.mouse.up()
    expect(_row(page, ui.children["knn-grouped"].run_id).locator(column)).to_be_in_viewport()
    _shot(page, "mlflow-runs.png")


def test_chart_view_charts_the_score_of_every_child_run(page, ui):
    _open_runs(page, ui)
    # The view switch's buttons are unlabelled icons; the chart one is its radio input's "CHART" value.
    page.locator("label", has=page.locator('input[name="runs-view-mode"][value="CHART"]')).click()
    search = page.get_by_placeholder("Search metric charts")
    expect(search).to_be_visible()
    cards = page.get_by_test_id("experiment-view-compare-runs-card")
    expect(cards).to_have_count(0)  # the top-level runs hold no metric: nothing to chart yet

    _expand_main(page, ui)
    search.fill("cv_accuracy")  # the per-fold curves, their mean and their spread
    card = cards.filter(has=page.get_by_role("heading", name=SCORE, exact=True))
    expect(card).to_be_visible()
    for name in ui.children:  # the legend
        expect(card.get_by_text(name, exact=True)).to_be_visible()
    bars = card.locator("g.point")  # Plotly's bars
    expect(bars).to_have_count(len(ui.children))

    # Hovering a bar shows its run and value.
    seen: dict[str, float] = {}
    who = page.get_by_text(re.compile(rf"^\S+ \({SCORE}\)$"))
    value = page.get_by_text(re.compile(rf"^{SCORE}: \S+$"))
    for i in range(len(ui.children)):
        box = bars.nth(i).bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        deadline = time.monotonic() + 10
        while True:
            if who.count() == 1 and value.count() == 1:
                name = who.inner_text().removesuffix(f" ({SCORE})")
                if name not in seen:
                    seen[name] = _number(value.inner_text().split(":", 1)[1])
                    break
            assert time.monotonic() < deadline, f"no tooltip for a new run over bar {i} (seen {seen})"
            time.sleep(0.1)
    assert seen == pytest.approx({c.name: c.score for c in ui.children.values()}, rel=1e-9)

    page.mouse.move(1, 1)
    expect(who).to_have_count(0)
    _shot(page, "mlflow-chart.png")


def test_models_tab_lists_the_models_by_name_with_their_scores(page, ui):
    _open_runs(page, ui)
    page.get_by_role("link", name="Models", exact=True).click()
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()

    assert sorted(ui.models) == sorted(ui.children), "each child run logs one model named like the run"
    assert "model" not in ui.all_model_names, ui.all_model_names
    names = page.locator('[role="gridcell"][col-id="name"]')
    expect(names.get_by_role("link", name="knn-grouped", exact=True)).to_be_visible()
    assert sorted(names.get_by_role("link").all_inner_texts()) == ui.all_model_names
    for name, model in ui.models.items():
        row = _row(page, model.model_id)
        expect(row.locator('[col-id="name"]').get_by_role("link", name=name, exact=True)).to_be_visible()
        source = row.locator('[col-id="source_run_id"]')
        expect(source).to_have_text(ui.children[name].name)  # the run that logged it

    # Scores are grouped by the dataset they were computed on: one group at a time, as "Columns" allows.
    scored_on = {}
    for name, model in ui.models.items():
        (metric,) = [m for m in model.metrics or [] if m.key == SCORE]
        scored_on[name] = f"Dataset: {metric.dataset_name} (#{metric.dataset_digest})"
    groups = sorted(
        {
            f"Dataset: {m.dataset_name} (#{m.dataset_digest})"
            for model in ui.models.values()
            for m in model.metrics or []
            if m.dataset_name
        }
    )  # the group titles in "Columns"; a group's header reads the same, on two lines
    menu = page.get_by_role("menu", name="Columns")
    shown = set(groups)

    def only(group: str) -> None:
        page.get_by_role("button", name="Columns").click()
        for other in groups:
            if (other == group) != (other in shown):  # clicking a group's title toggles it
                menu.get_by_text(other, exact=True).click()
                shown.symmetric_difference_update({other})
        page.keyboard.press("Escape")
        heading = page.get_by_role("columnheader").filter(has_text=group.removeprefix("Dataset: "))
        expect(heading).to_be_visible()

    for group in sorted(set(scored_on.values())):
        only(group)
        header = page.get_by_role("columnheader", name=SCORE, exact=True).first
        expect(header).to_be_visible()
        column = _column_of(header)
        for name, model in ui.models.items():
            cell = _row(page, model.model_id).locator(column)
            if scored_on[name] == group:
                score = ui.children[name].score
                expect(cell).to_have_text(re.compile(r"\d"))
                assert _number(cell.inner_text()) == pytest.approx(score, rel=1e-9), name
            else:  # an empty cell, or none at all
                expect(cell.filter(has_text=re.compile(r"\d"))).to_have_count(0)
        if group == scored_on["knn-grouped"]:
            page.get_by_role("button", name="Toggle sidebar").click()
            cell = _row(page, ui.models["knn-grouped"].model_id).locator(column)
            cell.scroll_into_view_if_needed()  # the names stay pinned on the left
            expect(cell).to_be_in_viewport()
            _shot(page, "mlflow-models.png")
            page.get_by_role("button", name="Toggle sidebar").click()


def _card_headings(card: str) -> list[str]:
    return [line.lstrip("#").strip() for line in card.splitlines() if line.startswith("#")]


def _check_card(page, card: str, trained: Run) -> None:
    """The model card as rendered Markdown: its headings, and the training run's scores in its table."""
    for heading in _card_headings(card):
        expect(page.get_by_role("heading", name=heading, exact=True).first).to_be_visible()
    metrics = trained.data.metrics
    for score in ("accuracy", "f1_macro"):
        row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=score, exact=True))
        expected = f"{metrics[f'cv_{score}_mean']:.4f} ± {metrics[f'cv_{score}_std']:.4f}"
        expect(row.first).to_contain_text(expected)


def test_registered_model_page_shows_the_version_and_its_model_card(page, ui):
    name, version = settings.MODEL_NAME, ui.version.version
    assert ui.registered.aliases.get("champion") == version
    assert ui.version.description and ui.registered.description
    assert _card_headings(ui.version.description)[0] == f"{name}, version {version}"

    page.goto(f"{ui.url}/#/models/{name}")
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible(timeout=TIMEOUT)
    _check_card(page, ui.registered.description, ui.trained)
    link = page.get_by_role("link", name=f"Version {version}", exact=True)
    expect(page.get_by_role("row").filter(has=link)).to_contain_text("champion")
    link.scroll_into_view_if_needed()  # the versions, below the card
    _shot(page, "mlflow-registered-model.png")

    link.click()
    expect(page.get_by_role("heading", name=f"Version {version}", exact=True)).to_be_visible()
    expect(page.get_by_text("@ champion").or_(page.get_by_text("@champion")).first).to_be_visible()
    _check_card(page, ui.version.description, ui.trained)
    # the card's lineage names the training run; the version's tags repeat it
    expect(page.get_by_text(ui.trained.info.run_id).first).to_be_visible()
    _shot(page, "mlflow-model-version.png")


def test_model_card_names_the_training_runs_commit(page, ui):
    commit = ui.trained.data.tags.get("mlflow.source.git.commit") or ui.trained.data.tags.get(
        "genre.git_commit"
    )
    page.goto(f"{ui.url}/#/models/{settings.MODEL_NAME}/versions/{ui.version.version}")
    lineage = page.get_by_role("row").filter(has=page.get_by_role("cell", name="code", exact=True))
    expect(lineage.first).to_be_visible(timeout=TIMEOUT)
    shown = lineage.first.inner_text()
    assert commit, "the training run recorded no commit"
    if commit not in shown:
        raise CardCommitError(f"the card's lineage says {shown!r}; the training run has {commit!r}")


def test_main_run_page_shows_the_comparison_as_its_description(page, ui):
    main = ui.main
    note = main.data.tags["mlflow.note.content"]
    page.goto(f"{ui.url}/#/experiments/{ui.experiment_id}/runs/{main.info.run_id}?{MODEL_TRAINING}")
    expect(page.get_by_role("heading", name="main", exact=True)).to_be_visible(timeout=TIMEOUT)
    # the heading's name includes its "Edit description" button
    expect(page.get_by_role("heading", name=re.compile(r"^Description\b"))).to_be_visible()
    opening = note.split("\n\n")[0].replace("`", "")
    expect(page.locator("body")).to_contain_text(opening.split(". ")[0])

    more = page.get_by_role("button", name="Show more").or_(page.get_by_text("Show more", exact=True))
    if more.count():
        more.first.click()
    table = page.get_by_role("table").filter(
        has=page.get_by_role("columnheader", name="cv_accuracy", exact=True)
    )
    expect(table).to_be_visible()
    for child in ui.children.values():
        protocol = f"{child.protocol} (leaky)" if child.leaky else child.protocol
        row = (
            table.get_by_role("row")
            .filter(has=page.get_by_role("cell", name=child.model, exact=True))
            .filter(has=page.get_by_role("cell", name=protocol, exact=True))
        )
        expect(row).to_have_count(1)
        expect(row).to_contain_text(f"{child.score:.3f}")

    for name in ui.children:  # "About this run" links every child
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
    _shot(page, "mlflow-main-run.png")

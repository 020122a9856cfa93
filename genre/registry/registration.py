"""The Model Registry: a training run's model registered for serving, with a model card, behind aliases.

``register`` takes one training run (given, or the best of an experiment by a metric), wraps its fitted
model as the served pyfunc (``genre.serving``), logs that in a registration run and registers it as a new
version of one registered model. The version gets a model card -- data, protocol, CV scores, parameters,
the runs it came from -- as its description (markdown, from ``registry/model_card.md``) and as tags, and
becomes ``champion``, or ``challenger`` when it should be tried before it serves
(``models:/<name>@challenger`` serves it beside the champion; ``promote("challenger")`` promotes it).

``promote`` moves the ``champion`` alias to another version and keeps the one it leaves as ``previous``,
so a rollback is ``promote("previous")``. The registered model's own description and tags always
describe its champion. Aliases, not stages: stages are deprecated since MLflow 2.9.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from importlib import resources

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from sklearn.pipeline import Pipeline

from genre import settings
from genre.data.schema import GTZAN_GENRES, SAMPLE_RATE
from genre.errors import RegistryError
from genre.evaluation import HELD_OUT, SCORES
from genre.serving import EXCERPT_SECONDS, log_serving_model, windowing
from genre.settings import CHALLENGER, CHAMPION, PREVIOUS
from genre.tracking import configure_tracking, logged_model_uri, tracked_run
from genre.training import run_name

__all__ = [
    "MODEL_CARD_TEMPLATE",
    "AUTO",
    "Registration",
    "best_run",
    "promote",
    "register",
]

#: The model card, as data shipped in the package: a ``string.Template`` in markdown.
MODEL_CARD_TEMPLATE = resources.files("genre.registry") / "model_card.md"

_TAG_PREFIX = "genre."


@dataclass(frozen=True)
class Registration:
    """A registered version: where it came from and what the registry now says."""

    name: str
    version: str
    source_run_id: str
    registration_run_id: str
    alias: str
    previous_champion: str | None
    card: str

    @property
    def model_uri(self) -> str:
        """The URI that follows the version's alias, ``models:/<name>@champion`` (or ``@challenger``)."""
        return f"models:/{self.name}@{self.alias}"


#: ``protocol`` of ``best_run`` and ``register`` that prefers GTZAN's artist-aware split.
AUTO = "auto"


def best_run(
    experiment: str | None = None,
    *,
    metric: str = "cv_accuracy_mean",
    model: str = "stacking",
    protocol: str = AUTO,
) -> Run:
    """The finished ``model`` run under ``protocol`` in ``experiment`` with the highest ``metric``.

    ``experiment`` defaults to the one every entry point agrees on (``tracking.configure_tracking``).

    The protocol is part of the choice because scores under different protocols do not compare: a leaky
    ``seed`` run on 3-s windows would beat every honest ``grouped`` one. ``auto`` takes the ``filtered``
    runs (GTZAN's artist-aware split, what users will see) when there are any, else the ``grouped``
    ones. Higher is better, as for all of the package's scores. Runs without the metric are not
    candidates. The default metric is a cross-validation score: a test score must not choose a model.

    Raises
    ------
    RegistryError
        No such experiment, or no candidate in it (the message says what was searched for).
    """
    found = configure_tracking() if experiment is None else mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise RegistryError(f"no experiment named {experiment!r} in {mlflow.get_tracking_uri()}")
    if protocol == AUTO:
        try:
            return best_run(found.name, metric=metric, model=model, protocol="filtered")
        except RegistryError:
            protocol = "grouped"
    experiment = found.name
    runs = MlflowClient().search_runs(
        [found.experiment_id],
        filter_string=(
            f"tags.`genre.model` = '{model}' and tags.`genre.protocol` = '{protocol}' "
            "and attributes.status = 'FINISHED'"
        ),
        order_by=[f"metrics.`{metric}` DESC"],
        max_results=1000,
    )
    scored = [run for run in runs if math.isfinite(run.data.metrics.get(metric, math.nan))]
    if not scored:
        raise RegistryError(
            f"no finished {model} run under the {protocol} protocol with a metric {metric!r} in "
            f"experiment {experiment!r} ({len(runs)} {model} run(s) searched); train one first "
            f"(genre train {model}) or pass a run id"
        )
    return max(scored, key=lambda run: run.data.metrics[metric])


def register(
    run_id: str | None = None,
    *,
    experiment: str | None = None,
    metric: str = "cv_accuracy_mean",
    model: str = "stacking",
    protocol: str = AUTO,
    name: str = settings.MODEL_NAME,
    alias: str = CHAMPION,
    reason: str | None = None,
) -> Registration:
    """Register a training run's model as a new version of ``name`` and make it the champion.

    Parameters
    ----------
    run_id : str, optional
        The training run whose ``model`` to register; by default ``best_run(experiment, metric=...,
        model=..., protocol=...)``.
    experiment, metric, model, protocol : str
        How the best run is chosen when ``run_id`` is not given.
    name : str, default settings.MODEL_NAME
        The registered model.
    alias : {"champion", "challenger"}, default "champion"
        ``champion`` promotes the new version (the old champion becomes ``previous``); ``challenger``
        leaves the champion serving and moves the ``challenger`` alias to the new version.
    reason : str, optional
        Why ``run_id`` was chosen, for the card's "chosen by" (default: "run id").

    Returns
    -------
    Registration
        The new version, its alias, and the champion it replaced (now ``previous``), if any.

    Raises
    ------
    RegistryError
        The run does not exist, is not a genre training run, or logged no model; or ``alias`` is neither.
    """
    if alias not in (CHAMPION, CHALLENGER):
        raise RegistryError(f"alias {alias!r}: a new version is registered as {CHAMPION!r} or {CHALLENGER!r}")
    configure_tracking()
    client = MlflowClient()
    if run_id is None:
        source = best_run(experiment, metric=metric, model=model, protocol=protocol)
        searched = client.get_experiment(source.info.experiment_id).name
        chosen = source.data.tags.get("genre.protocol", protocol)
        selection = f"best {metric} among the {model}/{chosen} runs of experiment {searched!r}"
    else:
        source = _get_run(client, run_id)
        selection = reason or "run id"
    mlflow.set_experiment(experiment_id=source.info.experiment_id)  # the registration beside its source
    tags = _card_tags(source)
    try:
        estimator = mlflow.sklearn.load_model(logged_model_uri(source))
    except (MlflowException, OSError) as exc:
        raise RegistryError(
            f"run {source.info.run_id} has no loadable model (was it trained with log_model=False?): "
            f"{str(exc).splitlines()[0]}"
        ) from None
    windowed = source.data.params.get("data.windowed", "True") == "True"
    example = _input_example(estimator)
    with tracked_run(run_name=f"register-{tags['genre.model']}", nested=mlflow.active_run() is not None):
        run = mlflow.active_run()
        mlflow.set_tags({"genre.job": "register", "genre.source_run_id": source.info.run_id})
        mlflow.log_params({"register.name": name, "register.selection": selection})
        served = run_name(tags["genre.model"], tags["genre.protocol"], tags["genre.features"])
        info = log_serving_model(
            estimator,
            windowed=windowed,
            input_example=example,
            name=f"{served}-served",  # the Models tab lists logged models by name
            registered_model_name=name,
            tags=tags,
        )
    version = str(info.registered_model_version)
    card = _model_card(
        source,
        name=name,
        version=version,
        selection=selection,
        registration_run_id=run.info.run_id,
        classes=[str(c) for c in estimator.classes_],
        windowed=windowed,
    )
    client.update_model_version(name, version, description=card)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if alias == CHAMPION:
        _, previous = promote(version, name=name)
    else:
        client.set_registered_model_alias(name, CHALLENGER, version)
        previous = None
    return Registration(name, version, source.info.run_id, run.info.run_id, alias, previous, card)


def promote(version: str | int, *, name: str = settings.MODEL_NAME) -> tuple[str, str | None]:
    """Make ``version`` (a number, or an alias such as ``"previous"``) the champion of ``name``.

    The version that was champion becomes ``previous``; a ``challenger`` alias on the promoted version is
    removed (it has won); the registered model's description and tags become the new champion's card.
    Returns the new champion's version and the old one's (None if there was none).

    Raises
    ------
    RegistryError
        No such registered model or version, or ``version`` is already the champion.
    """
    client = MlflowClient()
    target = _get_version(client, name, str(version))
    new = str(target.version)
    found = _alias_version(client, name, CHAMPION)
    old = str(found.version) if found is not None else None
    if old == new:
        raise RegistryError(f"{name} version {new} is already the {CHAMPION}")
    if old is not None:
        client.set_registered_model_alias(name, PREVIOUS, old)
    client.set_registered_model_alias(name, CHAMPION, new)
    if CHALLENGER in target.aliases:
        client.delete_registered_model_alias(name, CHALLENGER)
    client.update_registered_model(name, description=target.description or "")
    for key, value in target.tags.items():
        if key.startswith(_TAG_PREFIX):
            client.set_registered_model_tag(name, key, value)
    client.set_registered_model_tag(name, f"{_TAG_PREFIX}champion_version", new)
    return new, old


def _get_run(client: MlflowClient, run_id: str) -> Run:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise RegistryError(f"no run {run_id!r} in {mlflow.get_tracking_uri()}") from None
    if "genre.model" not in run.data.tags:
        raise RegistryError(
            f"run {run_id} is not a genre training run (no genre.model tag); pass a run of "
            "`genre train` or of the knn/svm/nn/stacking entry points"
        )
    return run


def _get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        client.get_registered_model(name)
    except MlflowException:
        raise RegistryError(f"no registered model {name!r} in {mlflow.get_registry_uri()}") from None
    if version.isdigit():
        try:
            return client.get_model_version(name, version)
        except MlflowException:
            raise RegistryError(f"{name} has no version {version}") from None
    found = _alias_version(client, name, version)
    if found is None:
        raise RegistryError(f"{name} has no version and no alias {version!r}")
    return found


def _alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _input_example(estimator: Pipeline) -> pd.DataFrame:
    """Two rows of the training data's means (the scaler's), a plausible and always valid input.

    Steps before the scaler (``logvar``) are undone, so the example is in the features' own units.
    """
    means = estimator.named_steps["scale"].mean_
    names = [name for name, _ in estimator.steps]
    for _, step in reversed(estimator.steps[: names.index("scale")]):
        means = step.inverse_transform(means[None, :])[0]
    return pd.DataFrame([means, means], columns=list(estimator.feature_names_in_))


def _card_tags(run: Run) -> dict[str, str]:
    """What the card says, as searchable tags: model, protocol, data, mean scores, the source run."""
    tags = {
        "genre.model": run.data.tags.get("genre.model", "?"),
        "genre.features": run.data.tags.get("genre.features", "gtzan57"),
        "genre.protocol": run.data.tags.get("genre.protocol", "?"),
        "genre.leaky": run.data.tags.get("genre.leaky", "?"),
        "genre.source_run_id": run.info.run_id,
    }
    tags.update({f"genre.{k}": v for k, v in run.data.params.items() if k.startswith("data.")})
    tags.update(
        {
            f"genre.{k}": f"{v:.4f}"
            for k, v in sorted(run.data.metrics.items())
            if k.endswith("_mean") or k.startswith("test_")
        }
    )
    return tags


def _model_card(
    run: Run,
    *,
    name: str,
    version: str,
    selection: str,
    registration_run_id: str,
    classes: list[str],
    windowed: bool,
) -> str:
    """The markdown model card, from ``MODEL_CARD_TEMPLATE``."""
    if not MODEL_CARD_TEMPLATE.is_file():
        raise RegistryError(f"the model card template {MODEL_CARD_TEMPLATE} is missing")
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    window = windowing(windowed)
    experiment = mlflow.get_experiment(run.info.experiment_id)
    return string.Template(MODEL_CARD_TEMPLATE.read_text()).substitute(
        name=name,
        version=version,
        model=tags.get("genre.model", "?"),
        features=tags.get("genre.features", "gtzan57"),
        protocol=tags.get("genre.protocol", "?"),
        held_out=HELD_OUT.get(tags.get("genre.protocol", ""), "none (cross-validation only)"),
        protocol_description=tags.get("genre.protocol_description", "?"),
        leaky=tags.get("genre.leaky", "?"),
        classes=", ".join(classes),
        window=(
            f"{window['window_samples'] / SAMPLE_RATE:.2f} s every "
            f"{window['window_step'] / SAMPLE_RATE:.2f} s "
            f"({'trained on 3-s windows' if windowed else 'trained on whole clips'}; a long file: "
            f"{EXCERPT_SECONDS:g} s of windows spread over it)"
        ),
        selection=selection,
        headline=_headline(metrics, tags.get("genre.protocol", "")),
        limits=_limits(classes),
        source_run_id=run.info.run_id,
        source_experiment=experiment.name if experiment else run.info.experiment_id,
        registration_run_id=registration_run_id,
        git_commit=tags.get("genre.git_commit") or tags.get("mlflow.source.git.commit", "not recorded"),
        tracking_uri=mlflow.get_tracking_uri(),
        data=_table({k: v for k, v in sorted(params.items()) if k.startswith("data.")}),
        scores=_scores_table(metrics, params),
        params=_table(
            {
                k.removeprefix("model."): v
                for k, v in sorted(params.items())
                if k.startswith(("model.", "cv."))
            }
        ),
    )


def _headline(metrics: dict[str, float], protocol: str) -> str:
    """The one figure a user should expect: the test on new artists, or why there is none."""
    test = metrics.get("test_accuracy")
    if protocol == "filtered" and test is not None:
        return (
            f"Accuracy on artists it never heard: {test:.3f} (GTZAN's fault-filtered test, 290 tracks, "
            "scored once after the model was chosen)."
        )
    if test is not None:
        return (
            f"Held-out test accuracy {test:.3f} under `{protocol}`: artists may be on both sides, so "
            "expect less on new artists."
        )
    return (
        f"No held-out test: the scores are `{protocol}` cross-validation, where an artist may be on both "
        "sides, so expect less on new artists."
    )


def _limits(classes: list[str]) -> str:
    """What a model of these classes cannot know, said on its card rather than discovered by users."""
    if set(classes) == set(GTZAN_GENRES):
        return (
            f"It knows GTZAN's ten genres only ({', '.join(classes)}): any other music (electronic, folk, "
            "latin, soul, K-pop...) gets the nearest of these ten. GTZAN's clips were gathered around 2000 "
            "from CDs, radio and microphone recordings, so it has heard music of the 2000s and before; "
            "newer production styles are guesses. Its probabilities are its own confidence, not checked "
            "against how often it is right."
        )
    return (
        f"It knows the {len(classes)} classes of its training data only ({', '.join(classes)}): anything "
        "else gets the nearest of them."
    )


def _scores_table(metrics: dict[str, float], params: dict[str, str]) -> str:
    names = [*SCORES, "track_accuracy"]
    lines = [
        f"{params.get('cv.folds', '?')}-fold cross-validation (mean ± std over folds), and the held-out "
        "test where the protocol has one:",
        "",
        "| score | cv | test |",
        "|---|---|---|",
    ]
    for score in names:
        mean, std = metrics.get(f"cv_{score}_mean"), metrics.get(f"cv_{score}_std")
        test = metrics.get(f"test_{score}")
        if mean is None and test is None:
            continue
        cv = f"{mean:.4f} ± {std:.4f}" if mean is not None and std is not None else "-"
        lines.append(f"| {score} | {cv} | {f'{test:.4f}' if test is not None else '-'} |")
    return "\n".join(lines)


def _table(values: dict[str, str]) -> str:
    return "\n".join(["| name | value |", "|---|---|", *(f"| `{k}` | `{v}` |" for k, v in values.items())])

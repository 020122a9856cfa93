"""Batch scoring of a large library with Spark: the served pyfunc over feature rows or audio files.

``score_batch`` applies a genre serving model (``genre.serving``; e.g. ``models:/genre-classifier@champion``)
to a Spark DataFrame and writes Parquet. The model is the pyfunc the
server runs, so Spark's answers are the in-process ``predict``'s; the same job runs in local mode
(``local[2]``) and on a cluster (``master="spark://host:7077"``, ``yarn``, with the package installed on
the executors).

Inputs, told apart by ``audio``:

* **feature rows**: CSV files (with a header) or Parquet holding the model's feature columns (the 57
  ``FEATURE_COLUMNS``, musicnn's 100, or both) and an id
  column (``filename`` by default) that is carried through; other columns are ignored;
* **audio files**: files, or folders searched recursively for ``AUDIO_EXTENSIONS``, read with Spark's
  ``binaryFile`` source and sent to the model base64-encoded in its ``audio`` column. The id is the
  file's path as Spark names it (``file:/...`` locally).

The output has one row per input row or file: the id, ``genre``, one ``p_<genre>`` probability column per
genre, for audio the ``windows`` averaged, and ``error`` (null when scored).

One bad item never loses the good ones. The pyfunc refuses a whole request over one bad row or file
(that is what makes the server answer 400), and a UDF that raises fails the Spark job, so:

* feature rows go through ``mlflow.pyfunc.spark_udf``, after a Spark SQL check: a row with a missing,
  non-numeric or non-finite value gets an ``error`` naming the columns and values, is scored with those
  values replaced by zeros (so the input is read once) and that answer is dropped;
* audio files go through a pandas UDF of this module that loads the same pyfunc and sends each file as
  its own request; a refused file (not audio, empty, too short, too long, too large, silent) gets the
  model's own message, starting with the file's path, as its ``error`` (``_score_audio`` says why this
  is not ``spark_udf``).
"""

from __future__ import annotations

import base64
import operator
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from genre.errors import BatchError, DataError, GenreError, RegistryError
from genre.features import AUDIO_EXTENSIONS
from genre.registry import load_classifier
from genre.serving import AUDIO_COLUMN, MAX_ROWS
from genre.tracking import configure_tracking

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

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

#: Two cores here; ``local[*]`` or a cluster URL elsewhere.
DEFAULT_MASTER = "local[2]"
#: The id column of audio input: the file's path as Spark names it.
AUDIO_ID = "path"
#: Null when the row was scored, else why it was not: the row's id (the file), then the problem (the
#: columns and values at fault, or the model's own refusal of the file).
ERROR_COLUMN = "error"
#: Each genre's probability is the column ``p_<genre>``.
PROBABILITY_PREFIX = "p_"

_ARROW_BATCH = "spark.sql.execution.arrow.maxRecordsPerBatch"
_AUDIO_BATCH = 16  # files per Arrow batch: ~20 MB of 30-s WAVs in a worker's memory at once
_REPORTED = 20  # failures kept in BatchResult for the CLI to print; all of them are in the output


@dataclass(frozen=True)
class BatchResult:
    """What a batch job wrote: counts, the first failures (id, error) and the wall time."""

    output: str
    scored: int
    failed: int
    seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        """Rows (scored or failed) per second of the whole job, start-up and model loading included."""
        return (self.scored + self.failed) / self.seconds if self.seconds > 0 else float("nan")


def find_java() -> str | None:
    """The ``java`` Spark will start (``$JAVA_HOME/bin/java``, else ``java`` on PATH), or None."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def spark_session(
    master: str = DEFAULT_MASTER, *, driver_memory: str = "2g", app_name: str = "genre-score"
) -> SparkSession:
    """A SparkSession set up for scoring; ``local[2]`` uses this machine's two cores.

    * ``spark.driver.memory`` 2g: rows stream through the Python workers, the JVM holds little;
    * ``spark.sql.execution.arrow.pyspark.enabled``: results and pandas conversions go through Arrow
      (pandas UDFs, which ``spark_udf`` is, always do);
    * ``spark.sql.shuffle.partitions`` 2: scoring never shuffles, and a later aggregation over the
      output should not start Spark's default 200 tasks on two cores;
    * UI off (no port to bind for a batch job), log level ERROR (Spark's WARN lines are noise to a CLI),
      TensorFlow's start-up notes off in the workers.

    A local master also binds to loopback (``SPARK_LOCAL_IP``) and runs the Python workers with this
    interpreter (``PYSPARK_PYTHON``) unless those are set: pyspark would otherwise start whatever
    ``python3`` is on PATH, outside this environment. On a cluster the executors' Python is theirs.

    Raises
    ------
    BatchError
        pyspark is not installed, no Java runtime is found, or the JVM does not start.
    """
    SparkSession = _pyspark().sql.SparkSession  # noqa: N806 - the class, imported late
    if find_java() is None:
        raise BatchError(
            "Spark needs a Java 17+ runtime and none was found (no $JAVA_HOME/bin/java, no java on PATH); "
            "install one, e.g. apt-get install openjdk-17-jre-headless"
        )
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(master).appName(app_name)
    settings = {
        "spark.driver.memory": driver_memory,
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.shuffle.partitions": "2",
        "spark.ui.enabled": "false",
        "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # pyspark raises its own and py4j's types when the JVM does not start
        raise BatchError(f"Spark did not start with master {master!r}: {_spark_message(exc)}") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def score_batch(
    model_uri: str,
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    audio: bool = False,
    id_column: str = "filename",
    spark: SparkSession | None = None,
    master: str = DEFAULT_MASTER,
    overwrite: bool = False,
) -> BatchResult:
    """Score feature rows or audio files with a genre serving model on Spark; write Parquet to ``output``.

    Parameters
    ----------
    model_uri : str
        A genre serving model: ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/...``
        or a local path. It is downloaded once, so the driver and the executors score with the same
        version even if an alias moves meanwhile.
    inputs : path or sequence of paths
        Feature tables (``.csv`` with a header, or Parquet files/folders), or with ``audio`` audio files
        and folders. Any Hadoop filesystem URI Spark can read is accepted.
    output : path
        The Parquet folder to write (Spark writes one part file per task).
    audio : bool, default False
        Score audio files instead of feature rows.
    id_column : str, default "filename"
        Feature input: the column carried through to identify rows (audio: always ``path``).
    spark : SparkSession, optional
        Use this session (left running); by default one is started with ``spark_session(master)`` and
        stopped at the end.
    master : str, default DEFAULT_MASTER
        Spark master for the session started here.
    overwrite : bool, default False
        Replace an existing ``output``; otherwise an existing one is refused.

    Returns
    -------
    BatchResult
        Rows scored and failed, the first failures, and the seconds the whole job took.

    Raises
    ------
    BatchError, DataError, RegistryError
        The job cannot run: no Java, a missing input, no audio files or feature columns, an existing
        output, a model that is not a genre serving model. Single bad rows and files are not errors.
    """
    started = time.perf_counter()
    paths = [str(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
    if not paths:
        raise BatchError("nothing to score: no input paths given")
    for path in paths:
        if "://" not in path and not Path(path).exists():
            raise DataError(f"{path}: no such file or folder")
    out = str(output)
    if "://" not in out and Path(out).exists() and not overwrite:
        raise BatchError(f"{out} already exists; pass overwrite=True (genre score --overwrite) to replace it")
    identity = AUDIO_ID if audio else id_column
    if identity in {"genre", "windows", ERROR_COLUMN} or identity.startswith(PROBABILITY_PREFIX):
        raise DataError(f"id column {identity!r} would clash with an output column; choose another")
    configure_tracking()
    with tempfile.TemporaryDirectory(prefix="genre-score-") as tmp:
        local_model = _download(model_uri, tmp)
        classifier = load_classifier(model=local_model)  # a genre model? and its genres, for the columns
        session = spark if spark is not None else spark_session(master)
        try:
            if audio:
                scored = _score_audio(session, paths, local_model, tmp)
            else:
                udf = mlflow.pyfunc.spark_udf(
                    session, local_model, result_type=_result_type(False), env_manager="local"
                )
                scored = _score_features(session, paths, udf, id_column, classifier.columns)
            with _arrow_batch(session, _AUDIO_BATCH if audio else MAX_ROWS):
                _flatten(scored, identity, classifier.classes, audio=audio).write.mode(
                    "overwrite" if overwrite else "errorifexists"
                ).parquet(out)
            seconds = time.perf_counter() - started
            return _summary(session, out, identity, seconds)
        except GenreError:
            raise
        except Exception as exc:  # Spark's and py4j's exceptions, raised from the JVM or a task
            if _pyspark_error(exc):
                raise BatchError(f"the Spark job failed: {_spark_message(exc)}") from None
            raise
        finally:
            if spark is None:
                session.stop()


def _pyspark() -> Any:
    try:
        import pyspark
        import pyspark.sql
    except ImportError:
        raise BatchError("batch scoring needs pyspark: pip install 'genre[scale]'") from None
    return pyspark


def _download(model_uri: str, into: str) -> str:
    """The model in a local folder, so the driver's check and every executor load the same files."""
    try:
        return mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=into)
    except (MlflowException, OSError) as exc:
        raise RegistryError(f"cannot load {model_uri}: {str(exc).splitlines()[0]}") from None


def _result_type(audio: bool) -> StructType:
    """The struct ``spark_udf`` returns: the pyfunc's answer columns (``windows`` only for audio)."""
    from pyspark.sql.types import DoubleType, LongType, MapType, StringType, StructField, StructType

    fields = [
        StructField("genre", StringType()),
        StructField("probabilities", MapType(StringType(), DoubleType())),
    ]
    if audio:
        fields.append(StructField("windows", LongType()))
    return StructType(fields)


def _score_features(
    spark: SparkSession, paths: list[str], udf: Any, id_column: str, columns: list[str]
) -> DataFrame:
    """Feature rows -> (id, error, pred); bad rows are scored on zeros and their answer dropped later.

    ``columns`` are the model's feature columns (the 57, musicnn's 100, or both).
    """
    from pyspark.sql import functions as F  # noqa: N812 - pyspark's usual name

    frame = _read_table(spark, paths)
    missing = [c for c in (id_column, *columns) if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(
            f"{', '.join(paths)}: missing column(s) {shown}; feature input needs the "
            f"model's {len(columns)} feature columns and an id column (id_column={id_column!r})"
        )
    values = {c: F.col(c).try_cast("double") for c in columns}
    bad = {c: v.isNull() | F.isnan(v) | (F.abs(v) == F.lit(float("inf"))) for c, v in values.items()}
    cells = [
        F.when(
            bad[c],
            F.concat(
                F.lit(f"column {c}: "),
                F.coalesce(F.concat(F.lit("'"), F.col(c).cast("string"), F.lit("'")), F.lit("missing")),
            ),
        )
        for c in columns
    ]
    error = F.when(  # self-contained like an audio file's: it starts with the row's id
        reduce(operator.or_, bad.values()),
        F.concat(F.col(id_column).cast("string"), F.lit(": not finite numbers: "), F.concat_ws("; ", *cells)),
    )
    model_input = F.struct(*[F.when(bad[c], F.lit(0.0)).otherwise(values[c]).alias(c) for c in columns])
    return frame.select(F.col(id_column), error.alias(ERROR_COLUMN), udf(model_input).alias("pred"))


def _read_table(spark: SparkSession, paths: list[str]) -> DataFrame:
    kinds = {_table_kind(path) for path in paths}
    if len(kinds) > 1:
        raise DataError(f"{', '.join(paths)}: mixed CSV and Parquet input; score them separately")
    if kinds == {"csv"}:
        return spark.read.option("header", True).csv(paths)
    return spark.read.parquet(*paths)


def _table_kind(path: str) -> str:
    """``csv`` or ``parquet``, from the name, or for a local folder from the files in it."""
    names = [path]
    if "://" not in path and Path(path).is_dir():
        names = [p.name for p in Path(path).iterdir() if not p.name.startswith(("_", "."))]
    suffixes = {Path(name).suffix.lower() for name in names}
    if suffixes <= {".csv"} and suffixes:
        return "csv"
    if suffixes & {".csv"}:
        raise DataError(f"{path}: mixed CSV and other files; score them separately")
    if "://" in path or Path(path).is_dir() or suffixes <= {".parquet", ".pq"}:
        return "parquet"
    raise DataError(f"{path}: expected a .csv file or Parquet (for audio files, score with audio=True)")


def _score_audio(spark: SparkSession, paths: list[str], local_model: str, shipped: str) -> DataFrame:
    """Audio files -> (path, error, pred), each file its own request to the pyfunc.

    Not ``spark_udf``: it sends a whole Arrow batch as one request, which the model refuses over one bad
    file, and a failed UDF fails the job. A pre-check in another UDF would share Python workers with the
    model, whose logged copy of ``genre`` (``code_paths``) then competes with the installed one for the
    same module names. So this UDF imports nothing from ``genre``: it loads the same pyfunc as
    ``spark_udf`` does (once per task), sends each file alone, and records a refusal (``MlflowException``,
    the server's HTTP 400) as the file's error. The model's rules stay the only rules.
    """
    from pyspark import SparkFiles
    from pyspark.sql import functions as F  # noqa: N812 - pyspark's usual name
    from pyspark.sql.types import StringType, StructField

    glob = (
        "*.{" + ",".join(e.lstrip(".") for e in (*AUDIO_EXTENSIONS, *map(str.upper, AUDIO_EXTENSIONS))) + "}"
    )
    frames = []
    for path in paths:
        reader = spark.read.format("binaryFile")
        if _is_folder(path):
            reader = reader.option("recursiveFileLookup", "true").option("pathGlobFilter", glob)
        frames.append(reader.load(path).select("path", "content"))
    files = reduce(lambda a, b: a.unionByName(b), frames)
    if files.isEmpty():
        raise DataError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {', '.join(paths)}")
    # Executors find the model through SparkFiles, shipped as its uniquely named temporary folder: the
    # driver's temporary folder is not theirs on a cluster.
    spark.sparkContext.addFile(str(shipped), recursive=True)
    relative = str(Path(local_model).relative_to(Path(shipped).parent))
    answer_type = _result_type(True).add(StructField(ERROR_COLUMN, StringType()))
    column, fields = AUDIO_COLUMN, answer_type.fieldNames()

    @F.pandas_udf(answer_type)
    def score(batches: Iterator[tuple[pd.Series, pd.Series]]) -> Iterator[pd.DataFrame]:
        model = mlflow.pyfunc.load_model(str(Path(SparkFiles.getRootDirectory()) / relative))
        for names, contents in batches:
            answers: dict[str, list[object]] = {name: [] for name in fields}
            for name, data in zip(names, contents, strict=True):
                request = pd.DataFrame({column: [base64.b64encode(data).decode("ascii")]})
                try:
                    answer = model.predict(request).iloc[0]
                    row = [answer["genre"], answer["probabilities"], int(answer["windows"]), None]
                except MlflowException as exc:  # the model's refusal, its detail as data
                    row = [None, None, None, f"{name}: {exc.json_kwargs.get('genre_detail', exc.message)}"]
                for field_name, value in zip(fields, row, strict=True):
                    answers[field_name].append(value)
            # object columns: None stays None (pandas would turn a missing map or count into NaN)
            yield pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in answers.items()})

    scored = files.select("path", score("path", "content").alias("pred"))
    return scored.select("path", F.col(f"pred.{ERROR_COLUMN}").alias(ERROR_COLUMN), "pred")


def _is_folder(path: str) -> bool:
    """A local folder; for a URI (``hdfs://``, ``s3a://``) a name without a suffix."""
    return Path(path).is_dir() if "://" not in path else not Path(path).suffix


def _flatten(scored: DataFrame, identity: str, classes: list[str], *, audio: bool) -> DataFrame:
    """The output columns: id, genre, ``p_<genre>`` for every genre, (windows), error."""
    from pyspark.sql import functions as F  # noqa: N812 - pyspark's usual name

    ok = F.col(ERROR_COLUMN).isNull()
    columns = [F.col(identity), F.when(ok, F.col("pred.genre")).alias("genre")]
    columns += [F.when(ok, F.col("pred.probabilities")[c]).alias(f"{PROBABILITY_PREFIX}{c}") for c in classes]
    if audio:
        columns.append(F.when(ok, F.col("pred.windows")).alias("windows"))
    return scored.select(*columns, F.col(ERROR_COLUMN))


@contextmanager
def _arrow_batch(spark: SparkSession, limit: int) -> Iterator[None]:
    """Rows per Arrow batch -- one ``predict`` call -- at most ``limit`` during the block.

    The served model refuses more than ``MAX_ROWS`` feature rows per request; an Arrow batch of audio
    holds whole files in memory (1.3 MB per 30-s WAV), so ``_AUDIO_BATCH`` files at a time.
    """
    before = spark.conf.get(_ARROW_BATCH)
    spark.conf.set(_ARROW_BATCH, str(min(int(before), limit)))
    try:
        yield
    finally:
        spark.conf.set(_ARROW_BATCH, before)


def _summary(spark: SparkSession, out: str, identity: str, seconds: float) -> BatchResult:
    from pyspark.sql import functions as F  # noqa: N812 - pyspark's usual name

    written = spark.read.parquet(out)
    counts = written.select(F.count(F.lit(1)).alias("rows"), F.count(ERROR_COLUMN).alias("failed")).first()
    failures = written.where(F.col(ERROR_COLUMN).isNotNull()).select(identity, ERROR_COLUMN).limit(_REPORTED)
    return BatchResult(
        output=out,
        scored=counts["rows"] - counts["failed"],
        failed=counts["failed"],
        seconds=seconds,
        failures=[(str(row[0]), str(row[1])) for row in failures.collect()],
    )


def _pyspark_error(exc: Exception) -> bool:
    return type(exc).__module__.startswith(("pyspark", "py4j"))


def _spark_message(exc: Exception) -> str:
    """The line that says what went wrong: a Python task's last line, else the JVM message's first."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1] if "Traceback" in str(exc) else lines[0]

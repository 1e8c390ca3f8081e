"""Batch scoring: every open deal of a snapshot, scored by the champion from the offline store.

The HTTP scorer reads a deal's features from the online store when it is asked; here the same
feature service is read point in time for all open deals at once (`get_historical_features`),
at the time the online scorer uses for the same feature build: the start of the day after the
newest daily stats (`serving.scorer.default_as_of`). The features are encoded by the model's
own `FeatureSpec` (the training path); a test holds online and batch scores equal for the same
deal and time. The result is one Parquet object per snapshot, committed by its manifest
(`infra.layout.predictions_key`), which the explorer reads instead of calling the API per deal.

The deals are scored in chunks (`Settings.batch_score_chunk_rows`), each chunk a row group of that
object: a million-opportunity snapshot is scored in the memory of one chunk (docs/scale.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xgboost as xgb

from feature_repo.entities import ACCOUNT, OPPORTUNITY_ID, SECTOR
from feature_repo.feature_services import full_name
from feature_tables.published import feature_build
from infra.lake import PARQUET_COMPRESSION, Lake
from infra.layout import predictions_key, predictions_manifest_key
from infra.settings import Profile, Settings
from ingestion.tables import ACCOUNTS, SALES_PIPELINE, STAGES_OPEN
from serving.schemas import DEFAULT_TOP_K
from serving.scorer import PRICE_FEATURE, PRICE_VIEW, LoadedModel, load_champion
from training.examples import historical_features, open_deal_entities, scoring_time

if TYPE_CHECKING:
    from feast import FeatureStore

CONTRIBUTION_TYPE = pa.list_(
    pa.struct(
        [
            ("feature", pa.string()),
            ("value", pa.string()),
            ("contribution", pa.float64()),
        ]
    )
)


# predictions/snapshot=D/predictions.parquet: one row per open deal.
PREDICTION_SCHEMA = pa.schema(
    [
        (OPPORTUNITY_ID, pa.string()),
        ("deal_stage", pa.string()),
        ("win_probability", pa.float64()),
        ("expected_value", pa.float64()),
        ("list_price", pa.float64()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("as_of", pa.timestamp("us", tz="UTC")),
        ("features_as_of", pa.date32()),
        ("top_contributions", CONTRIBUTION_TYPE),
    ]
)
PREDICTION_COLUMNS: tuple[str, ...] = tuple(PREDICTION_SCHEMA.names)


@dataclass(frozen=True)
class BatchScores:
    """The scored open deals of one snapshot, and how long each part took."""

    snapshot: str
    parquet: bytes  # the predictions object: PREDICTION_SCHEMA, one row group per chunk
    rows: int
    model_name: str
    model_version: str
    as_of: datetime
    seconds: dict[str, float]
    chunks: int = 0  # row groups: the deals were scored this many at a time
    explained_rows: int = 0  # distinct model inputs explained (equal rows share their TreeSHAP)

    def summary(self) -> dict[str, Any]:
        """Rows, model, seconds per part and the throughputs: the model (encode + predict) and
        with its explanations (exact TreeSHAP contributions, the costly part)."""
        rows = self.rows
        model = self.seconds.get("score_encode", 0.0) + self.seconds.get("score_predict", 0.0)
        explained = self.seconds.get("score", 0.0)
        return {
            "snapshot": self.snapshot,
            "rows": rows,
            "model": f"{self.model_name} v{self.model_version}",
            "as_of": self.as_of.isoformat(),
            "chunks": self.chunks,
            "explained_rows": self.explained_rows,
            "seconds": self.seconds,
            "deals_per_second_model": round(rows / model) if model > 0 else None,
            "deals_per_second_explained": round(rows / explained) if explained > 0 else None,
        }


@dataclass
class Explanations:
    """The outputs of the model inputs explained so far: each distinct input's probability and
    its `top_k` contributions (feature positions and amounts), keyed by the input's bytes.

    A snapshot's chunks share one, so an input met again in a later chunk (a deal's twin: same
    agent, account, product and engage day) is not explained again: at 1M opportunities the
    open deals hold ~85,000 distinct inputs (36 %), one chunk at a time alone explained 57 %.
    It holds a few numbers per distinct input, not the deals: 52 MB for 85,000 inputs of 57
    features (tracemalloc).
    """

    top_k: int
    index: dict[bytes, int] = field(default_factory=dict)
    probabilities: np.ndarray = field(default_factory=lambda: np.empty(0))
    top: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=np.intp))
    amounts: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    def positions(self, keys: list[bytes]) -> np.ndarray:
        """Each key's position in the arrays, -1 for an input not explained yet."""
        return np.fromiter((self.index.get(key, -1) for key in keys), np.intp, len(keys))

    def add(
        self, keys: list[bytes], probabilities: np.ndarray, top: np.ndarray, amounts: np.ndarray
    ) -> None:
        start = len(self.index)
        self.index.update(zip(keys, range(start, start + len(keys)), strict=True))
        self.probabilities = np.concatenate([self.probabilities, probabilities])
        self.top = np.concatenate([self.top.reshape(-1, top.shape[1]), top])
        self.amounts = np.concatenate([self.amounts.reshape(-1, amounts.shape[1]), amounts])


def score_frame(
    loaded: LoadedModel,
    frame: pd.DataFrame,
    top_k: int = DEFAULT_TOP_K,
    nthread: int | None = None,
    explanations: Explanations | None = None,
) -> tuple[np.ndarray, pa.Array, dict[str, float]]:
    """Calibrated win probabilities of a feature frame, each row's `top_k` contributions
    (largest |SHAP| first, as the HTTP scorer orders them) as one Arrow column, and the seconds
    spent encoding, predicting and explaining (`predict` alone is XGBoost's floor), with
    `distinct_rows`: how many inputs were scored and explained here.

    XGBoost's exact TreeSHAP costs milliseconds per row (trees x leaves x depth^2) and is
    almost all of the time, so each distinct model input is scored and explained once: deals
    with the same agent, account, product and engage day (or none yet: every prospecting deal
    of that agent, account and product) have the same input row and so the same outputs.
    `explanations` carries the inputs already explained from one call to the next (the chunks
    of a snapshot); without it, a call starts afresh.
    """
    model = loaded.model
    # A batch is large: every core helps (the online scorer pins its booster to one thread).
    model.booster.set_param({"nthread": nthread or os.cpu_count() or 1})
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    encoded = model.spec.encode(frame)
    order = list(model.booster.feature_names or encoded.columns)
    n, k = len(frame), min(top_k, len(order))
    known = explanations if explanations is not None else Explanations(top_k)
    if known.top_k != top_k:
        raise ValueError(f"explanations kept for top_k={known.top_k}, asked for {top_k}")
    distinct, row_of = _distinct_rows(encoded[order].to_numpy(dtype="float64"))
    keys = [row.tobytes() for row in distinct]
    position = known.positions(keys)
    new = np.flatnonzero(position < 0)
    types = ["c" if name in model.spec.categorical else "q" for name in order]
    matrix = xgb.DMatrix(
        pd.DataFrame(distinct[new], columns=order), feature_types=types, enable_categorical=True
    )
    seconds["encode"] = _lap(started)
    seconds["distinct_rows"] = len(new)
    started = time.perf_counter()
    new_probabilities = np.empty(0)
    if len(new):
        new_probabilities = model.calibrator.apply(model.booster.predict(matrix))
    seconds["predict"] = _lap(started)
    started = time.perf_counter()
    new_top, new_amounts = np.empty((len(new), k), np.intp), np.empty((len(new), k))
    if k and len(new):
        contributions = model.booster.predict(matrix, pred_contribs=True)[:, :-1]
        new_top = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :k]
        new_amounts = np.take_along_axis(contributions, new_top, axis=1)
    seconds["shap"] = _lap(started)
    started = time.perf_counter()
    position[new] = np.arange(len(known.index), len(known.index) + len(new))
    known.add([keys[i] for i in new], new_probabilities, new_top, new_amounts)
    of_row = position[row_of]
    probabilities = known.probabilities[of_row]
    if not k:
        offsets = pa.array(np.zeros(n + 1, dtype=np.int32))
        return probabilities, pa.ListArray.from_arrays(offsets, _contributions([], [], [])), seconds
    top = known.top[of_row]
    names = np.asarray(order, dtype=object)[top].ravel()
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    column = pa.ListArray.from_arrays(
        offsets,
        _contributions(names, _top_values(frame, order, top), known.amounts[of_row].ravel()),
    )
    seconds["explain"] = _lap(started)
    return probabilities, column, seconds


def _distinct_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a float matrix and, for each row, the index of its distinct row.

    Rows are compared by their bytes, so missing values (NaN) match each other; NaN and zero are
    first written one way (XGBoost treats every NaN as missing and -0.0 as 0.0 alike).
    """
    values = np.where(np.isnan(values), np.nan, values + 0.0)  # one NaN, and -0.0 -> 0.0
    values = np.ascontiguousarray(values)
    rows = values.view(np.dtype((np.void, values.dtype.itemsize * values.shape[1]))).ravel()
    _, first, row_of = np.unique(rows, return_index=True, return_inverse=True)
    return values[first], row_of.ravel()


def _top_values(frame: pd.DataFrame, order: list[str], top: np.ndarray) -> list[str | None]:
    """Each row's feature values at its top contributions, as text: one feature column is
    turned into Python objects at a time, not the whole frame."""
    picked = np.empty(top.shape, dtype=object)
    for j, name in enumerate(order):
        hit = top == j
        if hit.any():
            picked[hit] = frame[name].to_numpy(dtype=object)[np.nonzero(hit)[0]]
    return [_text(v) for v in picked.ravel()]


def score_frame_on_ray(
    loaded: LoadedModel, frame: pd.DataFrame, top_k: int = DEFAULT_TOP_K
) -> tuple[np.ndarray, pa.Array, dict[str, float]]:
    """`score_frame` with Ray Data (the `cluster` profile): the frame split into blocks, each
    scored by `score_frame` in a Ray worker with one thread, the champion shared through the
    object store; the same probabilities and contributions in the frame's order. Ray must be
    connected (`infra.ray_runtime`)."""
    import ray

    started = time.perf_counter()
    model = ray.put(loaded)
    blocks = max(1, int(ray.cluster_resources().get("CPU", 1)))
    rows = frame.assign(**{_ROW: np.arange(len(frame), dtype=np.int64)})
    blocks_of_deals: Any = ray.data.from_pandas(rows, override_num_blocks=blocks)
    scored = blocks_of_deals.map_batches(
        _score_block,
        batch_format="pandas",
        batch_size=None,  # a whole block per call: one DMatrix per block
        fn_kwargs={"model_ref": model, "top_k": top_k},
    ).to_arrow_refs()
    table = pa.concat_tables(ray.get(scored)).sort_by(_ROW)
    contributions = table.column("top_contributions").combine_chunks()
    if not isinstance(contributions, pa.ListArray):  # an empty frame: one empty chunk
        contributions = contributions.cast(CONTRIBUTION_TYPE)
    probabilities = table.column("win_probability").to_numpy()
    return probabilities, contributions, {"ray": _lap(started)}


# The frame's row number while it is scored in blocks (restores the order afterwards).
_ROW = "__row"


def _score_block(batch: pd.DataFrame, model_ref: Any, top_k: int) -> pa.Table:
    """One block of `score_frame_on_ray`, in a Ray worker (one thread: Ray schedules the CPUs)."""
    import ray

    loaded: LoadedModel = ray.get(model_ref)
    probabilities, contributions, _ = score_frame(loaded, batch.drop(columns=[_ROW]), top_k, 1)
    return pa.table(
        {
            _ROW: pa.array(batch[_ROW].to_numpy(), pa.int64()),
            "win_probability": pa.array(probabilities, pa.float64()),
            "top_contributions": contributions.cast(CONTRIBUTION_TYPE),
        }
    )


def _contributions(names: Any, values: list[str | None], amounts: Any) -> pa.StructArray:
    return pa.StructArray.from_arrays(
        [
            pa.array(names, pa.string()),
            pa.array(values, pa.string()),
            pa.array(amounts, pa.float64()),
        ],
        fields=list(CONTRIBUTION_TYPE.value_type),
    )


def score_open_deals(
    settings: Settings,
    snapshot: str | None = None,
    *,
    top_k: int = DEFAULT_TOP_K,
    store: FeatureStore | None = None,
    loaded: LoadedModel | None = None,
    chunk_rows: int | None = None,
) -> BatchScores:
    """Score every open deal of `snapshot` (default: the current feature build's) with the
    champion, from that snapshot's feature build in the offline store at its scoring time.

    The deals go through in chunks of `chunk_rows` (default `settings.batch_score_chunk_rows`),
    in id order: each chunk's features are joined, scored, explained and appended to the Parquet
    object as a row group, so memory holds one chunk's features and contributions, not the
    snapshot's. The point-in-time join is row by row, so the chunks give the rows of one join.
    """
    from feature_tables.store import feature_store

    chunk_rows = chunk_rows or settings.batch_score_chunk_rows
    lake = Lake.from_settings(settings)
    build = feature_build(lake, snapshot)  # NoFeatureTablesError: says what to run
    snapshot = str(build["snapshot"])
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    loaded = loaded or load_champion(settings)  # RegistryError: no champion, says what to do
    features_as_of = date.fromisoformat(str(build["as_of_end"]))
    at = scoring_time(features_as_of)
    entities = _open_entities(lake, snapshot, at)
    seconds["load"] = _lap(started)
    sink = pa.BufferOutputStream()
    rows = explained = 0
    with pq.ParquetWriter(sink, PREDICTION_SCHEMA, compression=PARQUET_COMPRESSION) as writer:
        if not entities.empty:  # nothing open: an empty set of scores, committed like any other
            store = store or feature_store(settings, snapshot)
            on_ray = settings.profile is Profile.CLUSTER
            chunks = _Chunks(
                store, loaded, top_k, at, features_as_of, on_ray, seconds, Explanations(top_k)
            )
            with _scoring_runtime(settings):
                for start in range(0, len(entities), chunk_rows):
                    table = chunks.score(entities.iloc[start : start + chunk_rows])
                    writer.write_table(table)
                    rows += table.num_rows
            explained = chunks.explained_rows
    return BatchScores(
        snapshot,
        sink.getvalue().to_pybytes(),
        rows,
        loaded.name,
        loaded.version,
        at,
        seconds,
        chunks=-(-len(entities) // chunk_rows),
        explained_rows=explained,
    )


def _open_entities(lake: Lake, snapshot: str, at: datetime) -> pd.DataFrame:
    """The open deals' entity rows in id order (the order of the predictions object); only the
    open rows of the pipeline become pandas objects."""
    from validation.published import read_validated

    tables = read_validated(lake, snapshot)
    pipeline = tables[SALES_PIPELINE]
    pipeline = pipeline.filter(pc.is_in(pipeline["deal_stage"], pa.array(STAGES_OPEN)))
    accounts = tables[ACCOUNTS].select([ACCOUNT, SECTOR])
    del tables
    entities = open_deal_entities(pipeline.to_pandas(), accounts.to_pandas(), at)
    return entities.sort_values(OPPORTUNITY_ID, ignore_index=True)


def _scoring_runtime(settings: Settings) -> AbstractContextManager[Any]:
    """Where the chunks are scored: a Ray session on the `cluster` profile, else this process."""
    if settings.profile is Profile.CLUSTER:
        from infra.ray_runtime import ray_session

        return ray_session(settings)
    return contextlib.nullcontext()


@dataclass
class _Chunks:
    """What every chunk of a snapshot is scored with, and the time and rows added up."""

    store: FeatureStore
    loaded: LoadedModel
    top_k: int
    at: datetime
    features_as_of: date
    on_ray: bool
    seconds: dict[str, float]
    explanations: Explanations  # kept across chunks (not on Ray: a block explains its own)
    explained_rows: int = 0

    def score(self, entities: pd.DataFrame) -> pa.Table:
        """One chunk of open deals joined, scored and explained: its rows of the predictions
        object."""
        started = time.perf_counter()
        frame = historical_features(self.store, entities)
        frame = frame.sort_values(OPPORTUNITY_ID, ignore_index=True)
        _add(self.seconds, "features", _lap(started))
        started = time.perf_counter()
        if self.on_ray:
            probabilities, contributions, parts = score_frame_on_ray(self.loaded, frame, self.top_k)
        else:
            probabilities, contributions, parts = score_frame(
                self.loaded, frame, self.top_k, explanations=self.explanations
            )
        _add(self.seconds, "score", _lap(started))
        self.explained_rows += int(parts.pop("distinct_rows", len(frame)))
        for part, value in parts.items():
            _add(self.seconds, f"score_{part}", value)
        price_column = frame[full_name(PRICE_VIEW, PRICE_FEATURE)]
        price = pd.to_numeric(price_column, errors="coerce").to_numpy(dtype="float64")
        n = len(frame)
        return pa.Table.from_pydict(
            {
                OPPORTUNITY_ID: pa.array(frame[OPPORTUNITY_ID].astype(str), pa.string()),
                "deal_stage": pa.array(frame["deal_stage"].astype(str), pa.string()),
                "win_probability": pa.array(probabilities, pa.float64()),
                "expected_value": pa.array(probabilities * price, pa.float64(), from_pandas=True),
                "list_price": pa.array(price, pa.float64(), from_pandas=True),
                "model_name": pa.repeat(pa.scalar(self.loaded.name, pa.string()), n),
                "model_version": pa.repeat(pa.scalar(self.loaded.version, pa.string()), n),
                "as_of": pa.repeat(pa.scalar(self.at, pa.timestamp("us", tz="UTC")), n),
                "features_as_of": pa.repeat(pa.scalar(self.features_as_of, pa.date32()), n),
                "top_contributions": contributions,
            },
            schema=PREDICTION_SCHEMA,
        )


def write_predictions(lake: Lake, scores: BatchScores, lineage: dict[str, Any]) -> str:
    """Publish the scores under the snapshot's predictions manifest; the manifest's key."""
    manifest = predictions_manifest_key(scores.snapshot)
    lake.publish(
        manifest,
        {predictions_key(scores.snapshot): scores.parquet},
        {
            **scores.summary(),
            "model_name": scores.model_name,
            "model_version": scores.model_version,
            "scored_at": datetime.now(UTC).isoformat(),
            "lineage": lineage,
        },
    )
    return manifest


def score_snapshot(
    settings: Settings, snapshot: str | None = None, *, top_k: int = DEFAULT_TOP_K
) -> dict[str, Any]:
    """Score and publish; the run's summary (rows, model, seconds per part, throughput)."""
    lake = Lake.from_settings(settings)
    scores = score_open_deals(settings, snapshot, top_k=top_k)
    started = time.perf_counter()
    build = feature_build(lake, scores.snapshot)
    lineage = {
        "feature_snapshot": build.get("snapshot"),
        "feature_txid": build.get("txid"),
        "validated_txid": build.get("validated_txid"),
        "feature_built_at": build.get("built_at"),
    }
    write_predictions(lake, scores, lineage)
    scores.seconds["write"] = _lap(started)
    return scores.summary()


def _add(seconds: dict[str, float], part: str, value: float) -> None:
    seconds[part] = round(seconds.get(part, 0.0) + value, 3)


def _lap(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _text(value: Any) -> str | None:
    """A feature value as the scorer shows it (as text here: one Parquet column of values)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, str) else json.dumps(value)

"""Training examples: closed deals scored as of points in time, features from Feast only.

Each closed opportunity (Won = 1, Lost = 0) becomes one example at its engagement and one every
`step_days` after that while it was still open (strictly before its close date, so its own
outcome is never in the daily stats it is joined with). The entity frame carries the keys (with
the account's `sector`, join key of the product x sector stats), the as-of `event_timestamp`, the
label, `label_timestamp` (close date, for the leak-free split, never a feature) and the request
inputs of the on-demand view (`engage_date`, `request_timestamp`); everything else comes from
`get_historical_features` on the scoring service (`feature_repo.feature_services.SCORING_SERVICE`),
point-in-time joined by Feast. Deals engaged and closed on the same day have no as-of time before
their outcome and give no example.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_repo.entities import ACCOUNT, OPPORTUNITY_ID, PRODUCT, SALES_AGENT, SECTOR
from feature_repo.feature_services import SCORING_SERVICE
from infra.lake import Lake
from infra.settings import Settings
from ingestion.tables import ACCOUNTS, SALES_PIPELINE, STAGES_CLOSED, STAGES_OPEN
from training.errors import ExamplesError
from training.features import LABEL, LABEL_TIMESTAMP, TIMESTAMP, TRUE_PROBABILITY

if TYPE_CHECKING:
    from feast import FeatureStore

STEP_DAYS = 30
# Beyond this many examples more data barely moves the model (see docs/scale.md) but training
# time keeps growing: training samples whole opportunities down to it.
MAX_EXAMPLES = 300_000
# Entity rows per point-in-time join when a dataset is written to a file (`write_examples`).
CHUNK_ROWS = 250_000
# Rows per record batch when such a file is read back, sampled (`read_examples`).
READ_BATCH_ROWS = 65_536
# The keys each example copies from its pipeline row; its `sector` is looked up from the account.
DEAL_ROW_KEYS: tuple[str, ...] = (OPPORTUNITY_ID, SALES_AGENT, ACCOUNT, PRODUCT)
WON, LOST = STAGES_CLOSED


@dataclass
class Examples:
    frame: pd.DataFrame
    lineage: dict[str, Any] = field(default_factory=dict)
    # The snapshot's open deals with their features at its scoring time: what the model will be
    # asked about, saved as its monitoring reference (`training.reference`).
    open_deals: pd.DataFrame | None = None


def _days(values: pd.Series) -> np.ndarray:
    """Calendar days as naive datetime64 (read as UTC midnight)."""
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return stamps.dt.normalize().to_numpy(dtype="datetime64[ns]")


def entity_frame(
    pipeline: pd.DataFrame,
    accounts: pd.DataFrame | None = None,
    *,
    step_days: int | None = STEP_DAYS,
) -> pd.DataFrame:
    """One row per (closed deal, as-of day): engage day + k * step_days, before the close day,
    in (as-of time, deal id) order: the order of the examples (`write_examples` joins them in
    chunks of that order).

    With `accounts` (the validated accounts table) each row also gets its account's `sector`,
    the join key of `product_sector_daily_stats`; closed deals always have an account.
    """
    deals = pipeline[pipeline["deal_stage"].isin(STAGES_CLOSED)]
    deals = deals.dropna(subset=["engage_date", "close_date", ACCOUNT])
    if deals.empty:
        raise ExamplesError(
            "The pipeline has no closed deal with engage and close dates: nothing to learn from. "
            "Land a snapshot with history (`crm land`) and validate it (`crm validate`)."
        )
    engage, close = _days(deals["engage_date"]), _days(deals["close_date"])
    open_days = (close - engage).astype("timedelta64[D]").astype("int64")
    steps = np.ones(len(deals), dtype="int64")
    if step_days:
        steps = np.maximum(1, -(-open_days // step_days))
    repeat = np.repeat(np.arange(len(deals)), steps)
    k = np.arange(len(repeat)) - np.repeat(np.cumsum(steps) - steps, steps)
    as_of = engage[repeat] + (k * (step_days or 0)).astype("timedelta64[D]")
    before_close = as_of < close[repeat]
    repeat, as_of = repeat[before_close], as_of[before_close]
    # The rows' order is chosen before any column is built (a sort of the built frame copied
    # every column again: ~3 s at 1.9M rows): by time, then by the deal id's rank among deals.
    id_rank = np.empty(len(deals), dtype=np.int64)
    id_rank[pc.sort_indices(pa.array(deals[OPPORTUNITY_ID].to_numpy())).to_numpy()] = np.arange(
        len(deals)
    )
    order = np.lexsort((id_rank[repeat], as_of.astype("int64")))
    repeat, as_of = repeat[order], as_of[order]
    frame = pd.DataFrame({key: deals[key].to_numpy()[repeat] for key in DEAL_ROW_KEYS})
    frame[TIMESTAMP] = pd.to_datetime(as_of, utc=True)
    frame[LABEL] = (deals["deal_stage"].to_numpy()[repeat] == WON).astype("int64")
    frame[LABEL_TIMESTAMP] = pd.to_datetime(close[repeat], utc=True)
    frame["engage_date"] = pd.to_datetime(engage[repeat], utc=True)
    frame["request_timestamp"] = frame[TIMESTAMP]
    if accounts is not None:
        sectors = accounts.drop_duplicates(ACCOUNT).set_index(ACCOUNT)[SECTOR]
        frame[SECTOR] = frame[ACCOUNT].map(sectors)
    return frame


def scoring_time(features_as_of: date) -> datetime:
    """When a build's open deals are scored: the start of the day after its last day, the
    pairing of training and of the online scorer (stats of day d are stamped d 23:59:59)."""
    return datetime.combine(features_as_of + timedelta(days=1), day_time(), tzinfo=UTC)


def open_deal_entities(
    pipeline: pd.DataFrame, accounts: pd.DataFrame, at: datetime
) -> pd.DataFrame:
    """One entity row per open deal, scored at `at`: the keys (with the account's sector), the
    request inputs of the on-demand view and the deal's stage (not a feature)."""
    deals = pipeline[pipeline["deal_stage"].isin(STAGES_OPEN)]
    frame = pd.DataFrame({key: deals[key].to_numpy() for key in DEAL_ROW_KEYS})
    frame["deal_stage"] = deals["deal_stage"].to_numpy()
    frame[SECTOR] = frame[ACCOUNT].map(accounts.drop_duplicates(ACCOUNT).set_index(ACCOUNT)[SECTOR])
    frame[TIMESTAMP] = pd.Timestamp(at)
    frame["engage_date"] = pd.to_datetime(deals["engage_date"].to_numpy(), utc=True)
    frame["request_timestamp"] = frame[TIMESTAMP]
    return frame


def open_deal_features(
    store: FeatureStore,
    pipeline: pd.DataFrame,
    accounts: pd.DataFrame,
    build: dict[str, Any],
    feature_service: str = SCORING_SERVICE,
) -> tuple[pd.DataFrame, datetime]:
    """Every open deal of a feature build with its features at the build's scoring time (empty
    when nothing is open), sorted by id; and that time."""
    at = scoring_time(date.fromisoformat(str(build["as_of_end"])))
    entities = open_deal_entities(pipeline, accounts, at)
    if entities.empty:
        return entities, at
    frame = historical_features(store, entities, feature_service)
    return frame.sort_values(OPPORTUNITY_ID, ignore_index=True), at


def sample_opportunities(frame: pd.DataFrame, max_examples: int, seed: int) -> pd.DataFrame:
    """About `max_examples` rows: every example of a seeded sample of opportunities.

    Whole deals are kept or dropped, so a deal's as-of examples stay together (the split assigns
    a deal to one slice) and the as-of mix per deal is unchanged; `frame` if it is small enough.
    """
    if len(frame) <= max_examples:
        return frame
    ids = frame[OPPORTUNITY_ID].unique()
    rng = np.random.default_rng(seed)
    keep = rng.choice(ids, size=max(1, round(len(ids) * max_examples / len(frame))), replace=False)
    return frame[frame[OPPORTUNITY_ID].isin(keep)].reset_index(drop=True)


def historical_features(
    store: FeatureStore, entity_df: pd.DataFrame, feature_service: str = SCORING_SERVICE
) -> pd.DataFrame:
    """Point-in-time features of the feature service, joined to the entity rows by Feast."""
    service = store.get_feature_service(feature_service)
    job = store.get_historical_features(
        entity_df=entity_df, features=service, full_feature_names=True
    )
    return job.to_df()


def attach_truth(frame: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Add the true win probability (synthetic data only) for the oracle metrics."""
    truth = truth[[OPPORTUNITY_ID, TRUE_PROBABILITY]].drop_duplicates(OPPORTUNITY_ID)
    return frame.merge(truth, on=OPPORTUNITY_ID, how="left")


@dataclass
class _Inputs:
    """What a point-in-time join of a snapshot's examples starts from."""

    entities: pd.DataFrame
    store: FeatureStore
    truth: pd.DataFrame | None
    lineage: dict[str, Any]
    # The open deals at the build's scoring time (the monitoring reference's population).
    open_entities: pd.DataFrame


def _inputs(
    settings: Settings,
    snapshot: str | None,
    step_days: int | None,
    store: FeatureStore | None,
    feature_service: str,
) -> _Inputs:
    from feature_tables.published import feature_build
    from feature_tables.store import feature_store
    from infra.layout import ground_truth_key, validated_manifest_key
    from ingestion.landing import read_manifest_metadata
    from validation.published import latest_validated_snapshot, read_validated

    lake = Lake.from_settings(settings)
    snapshot = snapshot or latest_validated_snapshot(lake)
    validated_tables = read_validated(lake, snapshot)
    pipeline = validated_tables[SALES_PIPELINE].to_pandas()
    accounts = validated_tables[ACCOUNTS].to_pandas()
    entities = entity_frame(pipeline, accounts, step_days=step_days)
    build = feature_build(lake, snapshot)  # the snapshot's own features, never another's
    at = scoring_time(date.fromisoformat(str(build["as_of_end"])))
    open_entities = open_deal_entities(pipeline, accounts, at)
    del pipeline, accounts, validated_tables
    store = store or feature_store(settings, snapshot)
    truth_key = ground_truth_key(snapshot)
    truth = lake.read_parquet(truth_key).to_pandas() if lake.exists(truth_key) else None
    raw = read_manifest_metadata(lake, snapshot)
    validated = lake.read_manifest(validated_manifest_key(snapshot))
    lineage = {
        "snapshot": snapshot,
        "source": raw.get("source"),
        "source_checksums": raw.get("checksums"),
        "raw_code_version": raw.get("code_version"),
        "validated_txid": validated.txid,
        "feature_snapshot": build["snapshot"],
        "feature_txid": build["txid"],
        "feature_service": feature_service,
        "feast_project": settings.feast_project,
        "step_days": step_days,
    }
    return _Inputs(entities, store, truth, lineage, open_entities)


def _joined(inputs: _Inputs, entities: pd.DataFrame, feature_service: str) -> pd.DataFrame:
    frame = historical_features(inputs.store, entities, feature_service)
    if inputs.truth is not None:
        frame = attach_truth(frame, inputs.truth)
    return frame.sort_values([TIMESTAMP, OPPORTUNITY_ID], ignore_index=True)


def build_examples(
    settings: Settings,
    snapshot: str | None = None,
    *,
    step_days: int | None = STEP_DAYS,
    store: FeatureStore | None = None,
    feature_service: str = SCORING_SERVICE,
    max_examples: int | None = None,
    seed: int = 42,
) -> Examples:
    """Examples of a validated snapshot (default: the latest) with Feast features and lineage.

    With `max_examples`, a larger entity frame is sampled by opportunity (`sample_opportunities`)
    *before* the point-in-time join, so a large snapshot costs Feast only the rows trained on.
    """
    inputs = _inputs(settings, snapshot, step_days, store, feature_service)
    entities, available = inputs.entities, len(inputs.entities)
    if max_examples is not None:
        entities = sample_opportunities(entities, max_examples, seed)
    lineage = dict(inputs.lineage)
    if len(entities) < available:
        lineage |= {"examples_available": available, "examples_sampled": len(entities)}
    open_deals = inputs.open_entities
    if not open_deals.empty:
        open_deals = historical_features(inputs.store, open_deals, feature_service)
        open_deals = open_deals.sort_values(OPPORTUNITY_ID, ignore_index=True)
    return Examples(
        frame=_joined(inputs, entities, feature_service), lineage=lineage, open_deals=open_deals
    )


def _joined_table(
    inputs: _Inputs, entities: pd.DataFrame, feature_service: str, truth: pd.Series | None
) -> pa.Table:
    """`_joined`'s rows as an Arrow table, without pandas in between (which took most of the
    time of a large dataset: merge, multi-column sort, the conversions both ways)."""
    service = inputs.store.get_feature_service(feature_service)
    table = inputs.store.get_historical_features(
        entity_df=entities, features=service, full_feature_names=True
    ).to_arrow()
    if truth is not None:  # attach_truth: a left join on the deal, one truth row per deal
        # The Index's hash table is built once for every chunk (Arrow's index_in built its
        # value set again per call: ~0.5 s of 1M deals per chunk).
        found = truth.index.get_indexer(table.column(OPPORTUNITY_ID).to_numpy(zero_copy_only=False))
        values = truth.to_numpy(dtype="float64")[found]
        table = table.append_column(TRUE_PROBABILITY, pa.array(values, mask=found < 0))
    if _in_order(table.column(TIMESTAMP), table.column(OPPORTUNITY_ID)):
        return table  # already in order (the profiles' offline stores keep the entity rows')
    return table.take(
        pc.sort_indices(table, [(TIMESTAMP, "ascending"), (OPPORTUNITY_ID, "ascending")])
    )


def _in_order(times: pa.ChunkedArray, ids: pa.ChunkedArray) -> bool:
    """Whether rows are sorted by (time, id): one pass over neighbouring rows, not a sort."""
    if len(times) < 2:
        return True
    t0, t1 = times.slice(0, len(times) - 1), times.slice(1)
    i0, i1 = ids.slice(0, len(ids) - 1), ids.slice(1)
    step = pc.or_(pc.greater(t1, t0), pc.and_(pc.equal(t1, t0), pc.greater_equal(i1, i0)))
    return bool(pc.all(pc.fill_null(step, False)).as_py())


def write_examples(
    settings: Settings,
    path: Path,
    snapshot: str | None = None,
    *,
    chunk_rows: int = CHUNK_ROWS,
    step_days: int | None = STEP_DAYS,
    store: FeatureStore | None = None,
    feature_service: str = SCORING_SERVICE,
) -> Examples:
    """Every example of `build_examples`, written to the Parquet file `path` in the same order,
    `chunk_rows` entity rows at a time: memory holds one chunk's features, not the dataset.

    The point-in-time join is row by row, so joining the (time-ordered) entity rows in chunks
    gives the rows of one join. Returns the lineage with an empty frame of the file's columns.
    """
    inputs = _inputs(settings, snapshot, step_days, store, feature_service)
    entities = inputs.entities  # in (time, id) order already (entity_frame)
    inputs.entities = entities.iloc[:0]
    schema: pa.Schema | None = None
    temporary = path.with_name(f".{path.name}.tmp")
    writer: pq.ParquetWriter | None = None
    truth = None
    if inputs.truth is not None:
        deals = inputs.truth.drop_duplicates(OPPORTUNITY_ID)
        truth = pd.Series(
            deals[TRUE_PROBABILITY].to_numpy(), index=pd.Index(deals[OPPORTUNITY_ID].to_numpy())
        )
    # A chunk is written while the next one is joined (Arrow's writer releases the GIL): memory
    # holds at most two chunks' features.
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-examples")
    written: Future[None] | None = None
    try:
        for start in range(0, len(entities), chunk_rows):
            chunk = entities.iloc[start : start + chunk_rows]
            table = _joined_table(inputs, chunk, feature_service, truth)
            try:
                table = table if schema is None else table.cast(schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise ExamplesError(
                    f"Examples from entity row {start} on do not fit the types of the first "
                    f"chunk ({exc}); write with a larger chunk_rows."
                ) from exc
            if writer is None:
                # Whole-number features as float64, the training frame's type for them (pandas
                # turns a column with a null into float64): one type whatever a chunk holds.
                schema = pa.schema(
                    [
                        f.with_type(pa.float64())
                        if "__" in f.name and pa.types.is_integer(f.type)
                        else f
                        for f in table.schema
                    ]
                )
                table = table.cast(schema)
                writer = pq.ParquetWriter(temporary, schema)
            if written is not None:
                written.result()  # the previous chunk is in the file (or its error raised here)
            written = background.submit(writer.write_table, table)
            del table
        if written is not None:
            written.result()
    finally:
        background.shutdown(wait=True)
        if writer is not None:
            writer.close()
    if schema is None:
        raise ExamplesError(
            "No example rows to write: the snapshot has no closed deal to learn from."
        )
    temporary.replace(path)  # the file appears whole or not at all
    return Examples(frame=schema.empty_table().to_pandas(), lineage=inputs.lineage)


def read_examples(
    path: Path,
    max_examples: int | None = None,
    seed: int = 42,
    *,
    batch_rows: int = READ_BATCH_ROWS,
) -> tuple[pd.DataFrame, int]:
    """The examples of a `write_examples` file, opportunities sampled as `sample_opportunities`
    samples them, and how many examples the file holds.

    The file is read one record batch at a time and only the sampled deals' rows are kept, so
    memory holds the sample, not the file (1M opportunities: 1.9M examples; reading them whole
    and filtering afterwards peaked at 2.3 GB).
    """
    source = pq.ParquetFile(path)
    available = source.metadata.num_rows
    keep: pa.Array | None = None
    if max_examples is not None and available > max_examples:
        ids = source.read(columns=[OPPORTUNITY_ID]).to_pandas()
        sampled = sample_opportunities(ids, max_examples, seed)[OPPORTUNITY_ID].unique()
        keep = pa.array(sampled, source.schema_arrow.field(OPPORTUNITY_ID).type)
        del ids, sampled
    kept = []
    for batch in source.iter_batches(batch_size=batch_rows):
        if keep is not None:
            batch = batch.filter(pc.is_in(batch[OPPORTUNITY_ID], value_set=keep))
        kept.append(batch)
    table = pa.Table.from_batches(kept, schema=source.schema_arrow)
    del kept
    return table.to_pandas(), available

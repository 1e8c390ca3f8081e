"""Plain scoring logic (no BentoML): champion + Feast online features -> probabilities.

`open_engine` does all registry and feature-service work once; `score_ids` then costs one online
read per view for the whole batch (profiles cached), one matrix encode and two XGBoost calls
(probability, contributions). The service, the benchmark and the tests all use `ScoringEngine`.

The contributions (exact TreeSHAP) are most of a score's CPU: about 1 ms a row, against ~0.1 ms
for the probability. That is native code that releases the GIL, so `score_ids_async` hands it
(`_predict`) to a runner of the caller's, and the service's event loop keeps answering meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import xgboost as xgb
from pydantic import ValidationError, create_model

from feature_repo.entities import DEAL_KEYS, OPPORTUNITY_ID
from feature_repo.feature_services import FULL_NAME_SEP, SCORING_SERVICE, full_name
from feature_repo.features.opportunity import opportunity_fv
from feature_repo.features.product import product_profile_fv
from feature_repo.on_demand import opportunity_request_features
from infra.clock import utc
from infra.settings import Settings
from ingestion.tables import STAGES_CLOSED
from serving.encoding import (
    Encoder,
    days_open,
    engage_month,
    engage_quarter_end,
    list_price_tier,
)
from serving.errors import (
    InvalidFeatures,
    ModelMismatch,
    OpportunityClosed,
    OpportunityNotFound,
    ServingError,
)
from serving.online import Key, OnlineReader, Row, StoreTimeouts, ViewReader
from serving.schemas import DEFAULT_TOP_K, FeatureValue, Number
from training.features import FeatureSpec
from training.models import WinProbabilityModel

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger("bentoml.crm_serving")

OPPORTUNITY_VIEW = opportunity_fv.name
REQUEST_VIEW = opportunity_request_features.name
PRICE_VIEW, PRICE_FEATURE = product_profile_fv.name, "sales_price"
CLOSED_STAGES = frozenset(STAGES_CLOSED)
# The deal's join keys for the feature service's views (sector: of product_sector_daily_stats).
OPPORTUNITY_FEATURES = [*DEAL_KEYS, "engage_date", "deal_stage"]
# Request-time features computed here, exactly as the on-demand view computes them.
REQUEST_FEATURES = ("days_open", "list_price_tier", "engage_month", "engage_quarter_end")
STATIC_CACHE_SECONDS = 60.0
# Daily stats change once per materialisation (daily): a few seconds of cache is invisible, and
# saves a round trip per request. The opportunity row is always read (stage, outage -> 503).
DAILY_CACHE_SECONDS = 5.0
MAX_PROBLEMS_SHOWN = 10  # an error message names this many fields, then counts the rest
# How the service runs blocking work without blocking its event loop: a store read (network) or
# the model's native work (XGBoost releases the GIL), each on a thread of its own.
ReadRunner = Callable[[Callable[[], Any]], Awaitable[Any]]
# The model's output for a matrix: calibrated probabilities, and contributions (None if no
# request asked for any).
Predicted = tuple["np.ndarray[Any, Any]", "np.ndarray[Any, Any] | None"]


@dataclass(frozen=True)
class LoadedModel:
    model: WinProbabilityModel
    name: str
    version: str


@dataclass
class Deal:
    """What the opportunity view says about one id, and the request's scoring time."""

    opportunity_id: str
    keys: dict[str, str | None]  # DEAL_KEYS: sales_agent / account / product / sector
    engage_date: datetime | None
    event_ts: datetime | None


def load_champion(settings: Settings, alias: str = "champion") -> LoadedModel:
    """The model behind `alias` and its version (re-read if the alias moved while loading)."""
    from training.registry import alias_version, load_model

    for _ in range(3):
        before = alias_version(settings, alias)
        model = load_model(settings, alias)
        if before is not None and alias_version(settings, alias) == before:
            return LoadedModel(model, settings.model_name, before)
    raise ServingError(f"{settings.model_name}@{alias} kept moving while loading; retry.")


@dataclass
class Collected:
    """One deal's model inputs by full feature name, with their freshness and scoring time."""

    opportunity_id: str
    features: dict[str, Any]
    timestamps: dict[str, datetime | None]
    list_price: float | None
    as_of: datetime
    # The deal's join keys and engage date: what recomputing it offline needs (the served log).
    keys: dict[str, str | None] = field(default_factory=dict)
    engage_date: datetime | None = None


class ScoringEngine:
    """A loaded champion, the views it needs and an online reader. Thread-compatible:
    call it from one thread at a time (the service funnels batches through one worker)."""

    def __init__(
        self,
        loaded: LoadedModel,
        store: FeatureStore,
        profile: str,
        *,
        static_cache_seconds: float = STATIC_CACHE_SECONDS,
        daily_cache_seconds: float = DAILY_CACHE_SECONDS,
        timeouts: StoreTimeouts | None = None,
    ) -> None:
        self.loaded = loaded
        self.profile = profile
        self.spec: FeatureSpec = loaded.model.spec
        self.booster: xgb.Booster = loaded.model.booster
        # One thread: OpenMP fan-out costs ~20 ms per call on a busy 2-core machine, and a
        # scoring batch is far too small to gain from it.
        self.booster.set_param({"nthread": 1})
        self.encoder = Encoder(self.spec, self.booster.feature_names)
        self.calibrator = loaded.model.calibrator
        self.opportunity = ViewReader(
            store.get_feature_view(OPPORTUNITY_VIEW), OPPORTUNITY_ID, OPPORTUNITY_FEATURES
        )
        self.views = self._view_readers(store, static_cache_seconds, daily_cache_seconds)
        self._feature_model = self._what_if_model()
        self.online = OnlineReader(store, timeouts)  # last: it may open a connection

    def close(self) -> None:
        """Release the online store connection (a replaced engine, or shutdown)."""
        self.online.close()

    # ----------------------------------------------------------------------------- set-up
    def _view_readers(
        self, store: FeatureStore, static_seconds: float, daily_seconds: float
    ) -> list[ViewReader]:
        """One reader per stored view the model uses, checked against the feature service."""
        service = store.get_feature_service(SCORING_SERVICE)
        served = {p.name: {f.name for f in p.features} for p in service.feature_view_projections}
        wanted: dict[str, list[str]] = {}
        for column in self.spec.columns:
            view, _, feature = column.partition(FULL_NAME_SEP)
            if view not in served or feature not in served[view]:
                raise ModelMismatch(
                    f"The champion uses {column}, which feature service {SCORING_SERVICE} does "
                    "not serve: retrain on the current feature service (`crm train`)."
                )
            if view == REQUEST_VIEW:
                if feature not in REQUEST_FEATURES:
                    raise ModelMismatch(f"Request feature {column} is unknown to serving.")
                continue
            wanted.setdefault(view, []).append(feature)
        wanted.setdefault(PRICE_VIEW, [])
        if PRICE_FEATURE not in wanted[PRICE_VIEW]:
            wanted[PRICE_VIEW].append(PRICE_FEATURE)  # expected value and the price tier
        readers = []
        for view_name, features in wanted.items():
            feature_view = store.get_feature_view(view_name)
            join_keys = tuple(c.name for c in feature_view.entity_columns)
            unknown = [k for k in join_keys if k not in DEAL_KEYS]
            if not join_keys or unknown:
                raise ModelMismatch(
                    f"View {view_name} has join keys {list(join_keys)}; serving knows the deal's "
                    f"{', '.join(DEAL_KEYS)}: add the new key to feature_repo.entities.DEAL_KEYS."
                )
            static = feature_view.tags.get("grain") == "static"
            seconds = static_seconds if static else daily_seconds
            readers.append(ViewReader(feature_view, join_keys, features, seconds, static))
        return readers

    def _what_if_model(self) -> type:
        # Numbers the booster can take: finite, within float32 (as the request schema says).
        fields: dict[str, Any] = {n: (Number | bool | None, None) for n in self.spec.numeric}
        # Categorical levels are compared as text, as FeatureSpec.encode does (True -> "True").
        fields |= {name: (str | bool | int | None, None) for name in self.spec.categorical}
        return create_model("WhatIfFeatures", __config__={"extra": "forbid"}, **fields)

    # ----------------------------------------------------------------------------- scoring
    def score_ids(
        self,
        ids: Sequence[str],
        as_of: Sequence[datetime | None] | datetime | None = None,
        top_k: Sequence[int] | int = DEFAULT_TOP_K,
    ) -> list[dict[str, Any] | ServingError]:
        """Score many ids with one read per view; per id a score dict or the error to answer."""
        return self._scored(self.collect(ids, as_of), top_k)

    async def score_ids_async(
        self,
        ids: Sequence[str],
        as_of: Sequence[datetime | None] | datetime | None,
        top_k: Sequence[int] | int,
        io: ReadRunner,
        *,
        cpu: ReadRunner | None = None,
        collected: list[Collected | ServingError] | None = None,
    ) -> list[dict[str, Any] | ServingError]:
        """`score_ids` for the event loop: each read of a networked store awaited through `io`
        and the model's native work through `cpu` (other threads; None: here), the Python
        steps here, so the loop neither waits on the network nor sits through the model.
        `collected`, if given, receives each id's model inputs (the prediction log's rows)."""
        gathered = await self.collect_async(ids, as_of, io)
        if collected is not None:
            collected.extend(gathered)
        found, top_ks = self._found(gathered, top_k)
        rows = [c.features for _, c in found]
        if not rows:
            return self._results(gathered, found, [])
        predict = partial(self._predict, self.encoder.encode(rows), max(top_ks))
        predicted: Predicted = await cpu(predict) if cpu is not None else predict()
        return self._results(gathered, found, self._explain(rows, top_ks, *predicted))

    def collect(
        self, ids: Sequence[str], as_of: Sequence[datetime | None] | datetime | None = None
    ) -> list[Collected | ServingError]:
        """The online feature rows of many ids (one read per view), or why an id has none."""
        plan = self._collect_plan(ids, as_of)
        try:
            read = next(plan)
            while True:
                read = plan.send(read())
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def collect_async(
        self, ids: Sequence[str], as_of: Sequence[datetime | None] | datetime | None, io: ReadRunner
    ) -> list[Collected | ServingError]:
        """`collect`, each read of a networked store run through `io` (a local one inline)."""
        plan = self._collect_plan(ids, as_of)
        remote = self.online.remote
        try:
            read = next(plan)
            while True:
                read = plan.send(await io(read) if remote else read())
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _collect_plan(
        self, ids: Sequence[str], as_of: Sequence[datetime | None] | datetime | None
    ) -> Generator[Callable[[], Any], Any, list[Collected | ServingError]]:
        """The collect logic without I/O: it yields each store read and gets its rows back, so
        the same steps run blocking (`collect`) or awaiting (`collect_async`)."""
        as_ofs = list(as_of) if isinstance(as_of, Sequence) else [as_of] * len(ids)
        opp_rows: dict[Key, Row] = yield partial(self.online.read, self.opportunity, ids)
        outcomes = [self._deal(i, opp_rows.get(i)) for i in ids]
        deals = [d for d in outcomes if isinstance(d, Deal)]
        if not deals:
            return outcomes  # type: ignore[return-value]
        wanted = [(r, [r.key(d.keys) for d in deals]) for r in self.views]
        rows = self.online.cached_many(wanted)  # daily stats and profiles: often all cached
        if rows is None:
            rows = yield partial(self.online.read_many, wanted)
        return [
            d if isinstance(d, ServingError) else self._assemble(d, rows, as_ofs[n])
            for n, d in enumerate(outcomes)
        ]

    def _scored(
        self, collected: list[Collected | ServingError], top_k: Sequence[int] | int
    ) -> list[dict[str, Any] | ServingError]:
        found, top_ks = self._found(collected, top_k)
        scored = self._score_rows([c.features for _, c in found], top_ks)
        return self._results(collected, found, scored)

    @staticmethod
    def _found(
        collected: list[Collected | ServingError], top_k: Sequence[int] | int
    ) -> tuple[list[tuple[int, Collected]], list[int]]:
        """The ids that can be scored (with their position) and the top_k of each."""
        top_ks = list(top_k) if isinstance(top_k, Sequence) else [top_k] * len(collected)
        found = [(i, c) for i, c in enumerate(collected) if not isinstance(c, ServingError)]
        return found, [top_ks[i] for i, _ in found]

    def _results(
        self,
        collected: list[Collected | ServingError],
        found: list[tuple[int, Collected]],
        scored: list[tuple[float, float | None, list[dict[str, Any]]]],
    ) -> list[dict[str, Any] | ServingError]:
        results: list[dict[str, Any] | ServingError] = list(collected)  # type: ignore[arg-type]
        for (i, c), (probability, base, contributions) in zip(found, scored, strict=True):
            results[i] = self._result(
                c.opportunity_id, probability, base, contributions, c.list_price, c.as_of
            ) | {"feature_timestamps": c.timestamps}
        return results

    def score_one(
        self, opportunity_id: str, as_of: datetime | None = None, top_k: int = DEFAULT_TOP_K
    ) -> dict[str, Any]:
        result = self.score_ids([opportunity_id], as_of, top_k)[0]
        if isinstance(result, ServingError):
            raise result
        return result

    def score_features(
        self,
        features: Mapping[str, FeatureValue],
        list_price: float | None = None,
        top_k: int = DEFAULT_TOP_K,
    ) -> dict[str, Any]:
        """What-if: explicit feature values, validated by name, type and category level."""
        values = self.validate_features(features)
        if list_price is None:
            list_price = values.get(full_name(PRICE_VIEW, PRICE_FEATURE))
        probability, base, contributions = self._score_rows([values], [top_k])[0]
        return self._result(None, probability, base, contributions, list_price, None) | {
            "feature_timestamps": {}
        }

    def validate_features(self, features: Mapping[str, FeatureValue]) -> dict[str, Any]:
        try:
            values = self._feature_model(**features).model_dump()
        except ValidationError as exc:
            problems: dict[str, str] = {}
            for error in exc.errors():
                problems.setdefault(str(error["loc"][0]), error["msg"])
            raise InvalidFeatures(
                f"Invalid features ({_listed(f'{n}: {m}' for n, m in problems.items())}). "
                "GET /model_features lists names, types and category levels.",
                list(problems)[:MAX_PROBLEMS_SHOWN],
            ) from exc
        bad = [
            f"{name}={values[name]!r} (levels: {', '.join(levels)})"
            for name, levels in self.spec.categorical.items()
            if values.get(name) is not None and str(values[name]) not in levels
        ]
        if bad:
            fields = [b.split("=", 1)[0] for b in bad]
            raise InvalidFeatures(f"Unknown category level: {_listed(bad)}.", fields)
        return values

    # ----------------------------------------------------------------------------- internals
    def _deal(self, opportunity_id: str, row: Row) -> Deal | ServingError:
        if row is None or not row[1]:
            return OpportunityNotFound(
                f"Opportunity {opportunity_id!r} is not in the online store: check the id, or "
                "run `crm materialize` if it was landed after the last materialisation."
            )
        event_ts, values = row
        stage = values.get("deal_stage")
        if stage in CLOSED_STAGES:
            return OpportunityClosed(
                f"Opportunity {opportunity_id!r} is already closed ({stage}): only open deals "
                "are scored; use POST /score_features for a what-if."
            )
        engage = values.get("engage_date")
        return Deal(
            opportunity_id,
            {k: values.get(k) for k in DEAL_KEYS},
            utc(engage) if isinstance(engage, datetime) else None,
            event_ts,
        )

    def _assemble(
        self, deal: Deal, rows: Mapping[str, Mapping[Key, Row]], as_of: datetime | None
    ) -> Collected:
        features: dict[str, Any] = {}
        timestamps: dict[str, datetime | None] = {OPPORTUNITY_VIEW: deal.event_ts}
        newest_daily: datetime | None = None
        for reader in self.views:
            key = reader.key(deal.keys)
            row = rows[reader.name].get(key) if key is not None else None
            event_ts, values = row if row is not None else (None, {})
            timestamps[reader.name] = event_ts
            for feature in reader.features:
                features[full_name(reader.name, feature)] = values.get(feature)
            if event_ts is not None and not reader.static:
                newest_daily = event_ts if newest_daily is None else max(newest_daily, event_ts)
        price = features.get(full_name(PRICE_VIEW, PRICE_FEATURE))
        request_ts = utc(as_of) if as_of is not None else default_as_of(newest_daily)
        features[full_name(REQUEST_VIEW, "days_open")] = days_open(deal.engage_date, request_ts)
        features[full_name(REQUEST_VIEW, "list_price_tier")] = list_price_tier(price)
        month = engage_month(deal.engage_date)
        features[full_name(REQUEST_VIEW, "engage_month")] = month
        features[full_name(REQUEST_VIEW, "engage_quarter_end")] = engage_quarter_end(month)
        return Collected(
            deal.opportunity_id,
            features,
            timestamps,
            price,
            request_ts,
            keys=deal.keys,
            engage_date=deal.engage_date,
        )

    def _score_rows(
        self, rows: Sequence[Mapping[str, Any]], top_ks: Sequence[int]
    ) -> list[tuple[float, float | None, list[dict[str, Any]]]]:
        if not rows:
            return []
        predicted = self._predict(self.encoder.encode(rows), max(top_ks, default=0))
        return self._explain(rows, top_ks, *predicted)

    def _predict(self, matrix: np.ndarray[Any, Any], k_max: int) -> Predicted:
        """The model's native work for an encoded matrix: almost all of it runs without the GIL
        (XGBoost's C API through ctypes), so another thread may run it while the loop serves."""
        dmatrix = xgb.DMatrix(
            matrix,
            feature_names=self.encoder.columns,
            feature_types=self.encoder.feature_types,
            enable_categorical=True,
            nthread=1,
        )
        raw = self.booster.predict(dmatrix, validate_features=False)
        probabilities = self.calibrator.apply(raw)
        contribs = (
            self.booster.predict(dmatrix, pred_contribs=True, validate_features=False)
            if k_max
            else None
        )
        return probabilities, contribs

    def _explain(
        self,
        rows: Sequence[Mapping[str, Any]],
        top_ks: Sequence[int],
        probabilities: np.ndarray[Any, Any],
        contribs: np.ndarray[Any, Any] | None,
    ) -> list[tuple[float, float | None, list[dict[str, Any]]]]:
        """Per row: probability, base margin and the top_k contributions by magnitude."""
        out = []
        for r, row in enumerate(rows):
            base: float | None = None
            contributions: list[dict[str, Any]] = []
            if contribs is not None and top_ks[r]:
                base = float(contribs[r, -1])
                values = contribs[r, :-1]
                order = np.argsort(-np.abs(values), kind="stable")[: top_ks[r]]
                contributions = [
                    {
                        "feature": self.encoder.columns[j],
                        "value": _plain(row.get(self.encoder.columns[j])),
                        "contribution": float(values[j]),
                    }
                    for j in order
                ]
            out.append((float(probabilities[r]), base, contributions))
        return out

    def _result(
        self,
        opportunity_id: str | None,
        probability: float,
        base: float | None,
        contributions: list[dict[str, Any]],
        price: float | None,
        as_of: datetime | None,
    ) -> dict[str, Any]:
        return {
            "opportunity_id": opportunity_id,
            "win_probability": probability,
            "expected_value": None if price is None else probability * float(price),
            "list_price": None if price is None else float(price),
            "contributions": contributions,
            "base_margin": base,
            "model_name": self.loaded.name,
            "model_version": self.loaded.version,
            "as_of": as_of,
            "profile": self.profile,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "model_name": self.loaded.name,
            "model_version": self.loaded.version,
            "numeric": list(self.spec.numeric),
            "categorical": {k: list(v) for k, v in self.spec.categorical.items()},
        }


def default_as_of(newest_daily: datetime | None) -> datetime:
    """The start of the day after the newest daily stats row: the pairing training uses
    (examples are scored at midnight with the stats of the end of the day before)."""
    if newest_daily is None:
        return utc(datetime.now()).replace(microsecond=0)
    return utc(newest_daily).replace(microsecond=0) + timedelta(seconds=1)


def _listed(items: Iterable[str], shown: int = MAX_PROBLEMS_SHOWN) -> str:
    """`a; b; c (and 7 more)`: an error message stays short whatever the request held."""
    items = list(items)
    more = f" (and {len(items) - shown} more)" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float | int | bool | str) or value is None:
        return value
    return str(value)


def store_timeouts(settings: Settings) -> StoreTimeouts:
    """The online store's timeouts from `CRM_SERVING_STORE_*`."""
    return StoreTimeouts(
        connect_s=settings.serving_store_connect_timeout,
        read_s=settings.serving_store_timeout,
    )


def open_engine(settings: Settings, alias: str = "champion") -> ScoringEngine:
    """Load the champion and the profile's feature store: the whole start-up work."""
    from feature_tables.store import feature_store

    started = time.perf_counter()
    loaded = load_champion(settings, alias)
    store = feature_store(settings)
    engine = ScoringEngine(loaded, store, settings.profile.value, timeouts=store_timeouts(settings))
    log.info(
        "Loaded %s v%s and the %s feature store in %.1f s",
        loaded.name,
        loaded.version,
        settings.profile.value,
        time.perf_counter() - started,
    )
    return engine

"""Open the Feast store of the active profile, apply the definitions, materialise online.

The definitions live in `feature_repo/` (one set for every profile); the stores come from
`feature_repo/<profile>/feature_store.yaml`, whose `${CRM_...}` placeholders are filled from
`Settings`, so Python code and the `feast` CLI (with `feast_env` exported) see the same stores.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import weakref
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from feast import FeatureStore, FeatureView, FileSource
from feast.repo_config import RepoConfig

from feature_repo.definitions import current_feature_snapshot, definitions
from feature_repo.entities import JOIN_KEYS
from feature_tables.compute import PROFILE_TIMESTAMP
from feature_tables.errors import FeatureTablesError
from infra.clock import utc
from infra.lake import Lake
from infra.settings import PROJECT_ROOT, Profile, Settings

# The first materialisation of a view loads everything from before the earliest row.
FULL_LOAD_START = PROFILE_TIMESTAMP - timedelta(days=1)
# Feast's online read cannot take a null join key (open deals may have no account): ask for
# this key instead, which has no rows, so the entity's features come back null as offline.
MISSING_ENTITY = "__missing__"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def feast_env(settings: Settings) -> dict[str, str]:
    """Values of the `${CRM_...}` placeholders in the stack/prod feature_store.yaml."""
    if not settings.uses_s3:
        return {}
    return {k: v for k, v in settings.env_exports().items() if k.startswith("CRM_PG_") and v}


def repo_config(settings: Settings, registry_file: Path | None = None) -> RepoConfig:
    """The profile's feature_store.yaml with placeholders filled (and local paths under home).

    The YAML is parsed first and the placeholders filled in its string values, so a value is
    taken as it is: a password such as `p@ss:w/rd#1` or `'1234'` stays that string.
    `registry_file`: a file registry of its own instead of the profile's (see `feature_store`).
    """
    path = settings.feature_store_yaml
    if not path.is_file():
        raise FeatureTablesError(
            f"No {path}: the feature repo is incomplete for {settings.profile}."
        )
    values = feast_env(settings)
    text = path.read_text()
    unresolved = sorted({m for m in _PLACEHOLDER.findall(text) if not values.get(m)})
    if unresolved:
        raise FeatureTablesError(
            f"{path} needs {', '.join(unresolved)}: set them in the environment (or the matching "
            "Settings fields)."
        )
    raw: dict[str, Any] = _fill_placeholders(yaml.safe_load(text), values)
    raw["project"] = settings.feast_project
    if settings.profile is Profile.LOCAL:
        home = settings.home.resolve()
        raw["registry"]["path"] = str(home / "feast_registry.db")
        raw["online_store"]["path"] = str(home / "feast_online_store.db")
    if registry_file is not None:
        raw["registry"] = {"registry_type": "file", "path": str(registry_file)}
    config = RepoConfig(**raw)
    config.repo_path = PROJECT_ROOT
    return config


def _fill_placeholders(node: Any, values: dict[str, str]) -> Any:
    """`node` (parsed YAML) with every `${NAME}` in its strings replaced by `values[NAME]`."""
    if isinstance(node, dict):
        return {key: _fill_placeholders(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill_placeholders(value, values) for value in node]
    if isinstance(node, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], node)
    return node


def feature_store(settings: Settings, snapshot: str | None = None) -> FeatureStore:
    """A FeatureStore for `settings`' profile; on S3 profiles DuckDB gets the lake secret first.

    Feast's DuckDB offline store reads Parquet through ibis' *default* DuckDB backend
    (`ibis.read_parquet`) and ignores `s3_endpoint_override`; registering our S3 secret on a
    connection and making it the default backend is the one place the endpoint can be injected.

    With a `snapshot` other than the current build's: a store for point-in-time reads of that
    snapshot's feature build (training or scoring an earlier day). It has a registry of its own,
    a temporary file holding that build's definitions, so the profile's registry, which the
    online store and the scorer follow, is not touched; its online store is never read.
    """
    if settings.profile is Profile.LOCAL:
        settings.home.mkdir(parents=True, exist_ok=True)
    else:
        use_lake_duckdb(settings)
    lake = Lake.from_settings(settings)
    if snapshot is None or snapshot == current_feature_snapshot(lake):
        return FeatureStore(repo_path=str(PROJECT_ROOT), config=repo_config(settings))
    folder = Path(tempfile.mkdtemp(prefix=f"crm-feast-{snapshot}-"))
    store = FeatureStore(
        repo_path=str(PROJECT_ROOT), config=repo_config(settings, folder / "registry.db")
    )
    weakref.finalize(store, shutil.rmtree, folder, True)  # the registry goes with the store
    store.apply(definitions(lake, _s3_endpoint(settings), snapshot))
    return store


def _s3_endpoint(settings: Settings) -> str | None:
    return settings.s3_endpoint_url if settings.uses_s3 else None


def use_lake_duckdb(settings: Settings) -> None:
    """Make ibis' default backend a DuckDB connection that can read the S3 lake.

    Like every connection of ours it ignores persistent secrets, which could point at another
    instance's S3 server (see infra.duck).
    """
    import ibis

    from infra.duck import IN_PROCESS_CONFIG, enable_s3

    backend = ibis.duckdb.connect(**IN_PROCESS_CONFIG)
    enable_s3(backend.con, settings)
    ibis.set_backend(backend)


def apply(store: FeatureStore, settings: Settings) -> list[str]:
    """Register every definition, its file sources on `settings`' lake; the names applied."""
    objects = definitions(Lake.from_settings(settings), _s3_endpoint(settings))
    store.apply(objects)
    store.refresh_registry()  # a `cache_mode: thread` registry would lag behind the apply
    return sorted(o.name for o in objects)


def materialize(
    store: FeatureStore, end: datetime | None = None, *, full: bool = False
) -> dict[str, int]:
    """Load each online view: in full the first time (or with `full`), then only newer rows.

    Windows follow *data* time, not the wall clock: a view is loaded up to its newest
    `event_timestamp` (or `end` if earlier), and the next run starts just after that, so a new
    snapshot's later days are picked up even though they are dated years ago. Static profiles
    (tag `grain=static`, stamped at one early date) are reloaded in full every run; they are
    tiny. A snapshot that *rewrites* already-loaded days needs `full=True`.

    Returns per view how many entities were sent to the online store.
    """
    counts: dict[str, int] = {}
    store.refresh_registry()
    for view in store.list_feature_views():
        if not view.online:
            continue
        newest = _newest_timestamp(view)
        if newest is None:
            counts[view.name] = 0
            continue
        stop = min(newest, end.astimezone(UTC)) if end else newest
        intervals = view.materialization_intervals
        if full or view.tags.get("grain") == "static" or not intervals:
            start = FULL_LOAD_START
        else:
            start = utc(max(i[1] for i in intervals)) + timedelta(microseconds=1)
        if start > stop:
            counts[view.name] = 0
            continue
        store.materialize(start_date=start, end_date=stop, feature_views=[view.name])
        counts[view.name] = _entities_between(view, start, stop)
    return counts


def online_entity_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entity rows safe for `get_online_features`: null join keys become MISSING_ENTITY."""
    return [
        {k: (MISSING_ENTITY if k in JOIN_KEYS and v is None else v) for k, v in row.items()}
        for row in rows
    ]


def _source_path(view: FeatureView) -> str:
    source = view.batch_source
    if not isinstance(source, FileSource):
        raise FeatureTablesError(
            f"Feature view {view.name} reads {type(source).__name__}; feature_tables only "
            "manages lake Parquet FileSources (feature_repo/data_sources.py)."
        )
    return source.path


def _newest_timestamp(view: FeatureView) -> datetime | None:
    import ibis

    table = ibis.read_parquet(_source_path(view))
    newest = table.event_timestamp.cast("timestamp").max().execute()
    return None if newest is None or pd.isna(newest) else utc(pd.Timestamp(newest).to_pydatetime())


def _entities_between(view: FeatureView, start: datetime, end: datetime) -> int:
    """Distinct entities with a row in [start, end], read back through Feast's own DuckDB."""
    import ibis

    table = ibis.read_parquet(_source_path(view))
    ts = table.event_timestamp.cast("timestamp")
    keys = [table[column.name] for column in view.entity_columns]
    lo = ibis.literal(start.replace(tzinfo=None))
    hi = ibis.literal(end.replace(tzinfo=None))
    rows = table.filter((ts >= lo) & (ts <= hi)).select(*keys).distinct().count()
    return int(rows.execute())

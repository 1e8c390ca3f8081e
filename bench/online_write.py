"""Online write peers (`python -m bench.online_write`): Feast's PostgreSQL write against ours.

The same feature tables (a synthetic snapshot's, computed in memory and written to a private
local lake) are materialised, one after the other in this process, into two Feast projects on
one fresh database of the machine's PostgreSQL: through Feast's stock `PostgreSQLOnlineStore`
(`executemany` of a one-row upsert) and through `feature_tables.postgres_online` (COPY + one
upsert), both with the profiles' `online_write_batch_size`. Reported: seconds and feature rows/s
(entities x features) of each, and the ratio. The database is dropped afterwards.
Adds `online_write_peers` to bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "scale.json"
SNAPSHOT = date(2017, 12, 31)


def run(opportunities: int, folder: Path) -> dict[str, Any]:
    import psycopg
    from feast import FeatureStore
    from feast.repo_config import RepoConfig
    from psycopg import sql
    from pydantic import SecretStr

    from feature_repo.definitions import definitions
    from feature_tables.compute import compute_feature_tables, write_feature_tables
    from feature_tables.postgres_online import STORE_TYPE
    from feature_tables.store import materialize, repo_config
    from infra.lake import Lake
    from infra.settings import PROJECT_ROOT, Profile, Settings
    from ingestion.synthetic import as_of, generate
    from validation.run import validate_tables

    admin = Settings(_env_file=None).pg_admin_dsn  # type: ignore[call-arg]
    database = f"crm_bench_write_{uuid.uuid4().hex[:8]}"
    data = as_of(generate(opportunities, seed=2), SNAPSHOT)
    outcome = validate_tables(data.tables, threshold=0.0)
    tables = compute_feature_tables(outcome.validated, as_of_end=SNAPSHOT)
    lake = Lake.from_settings(Settings(profile=Profile.LOCAL, home=folder, _env_file=None))  # type: ignore[call-arg]
    write_feature_tables(lake, tables)
    settings = Settings(  # type: ignore[call-arg]
        profile=Profile.STACK,
        home=folder,
        pg_host="127.0.0.1",
        pg_user="postgres",
        pg_password=SecretStr("trust-auth"),  # the machine's loopback PostgreSQL trusts
        pg_db_feast_online=database,
        _env_file=None,
    )
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as con:
        con.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    out: dict[str, Any] = {"opportunities": opportunities}
    try:
        for name, store_type in (("feast_postgres", "postgres"), ("copy", STORE_TYPE)):
            raw = repo_config(settings, folder / f"{name}.db").model_dump(
                by_alias=True, exclude_none=True
            )
            raw |= {"project": f"w_{name}", "repo_path": PROJECT_ROOT}
            raw["online_store"]["type"] = store_type
            store = FeatureStore(repo_path=str(PROJECT_ROOT), config=RepoConfig(**raw))
            store.apply(definitions(lake))
            widths = {v.name: len(v.features) for v in store.list_feature_views()}
            started = time.perf_counter()
            counts = materialize(store)
            seconds = time.perf_counter() - started
            rows = sum(counts[v] * widths[v] for v in counts)
            out[name] = {
                "seconds": round(seconds, 2),
                "feature_rows": rows,
                "feature_rows_per_s": round(rows / seconds),
            }
            print(f"  {name}: {out[name]}", flush=True)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as con:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            con.execute(drop.format(sql.Identifier(database)))
    out["copy_speedup"] = round(out["feast_postgres"]["seconds"] / out["copy"]["seconds"], 2)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crm-bench-write-") as folder:
        result = run(args.opportunities, Path(folder) / ".crm")
    print(json.dumps(result, indent=2))
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current["online_write_peers"] = result
    temporary = RESULTS.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(current, indent=2, default=str) + "\n")
    temporary.replace(RESULTS)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Online write peers (`python -m bench.online_write`): Feast's PostgreSQL write against ours.

The same feature tables (a synthetic snapshot's, computed in memory and written to a private
local lake) are materialised, one after the other in this process, into Feast projects on one
fresh database of the machine's PostgreSQL, each with the profiles' `online_write_batch_size`:

- `feast_postgres`: Feast's stock `PostgreSQLOnlineStore` and local engine (`executemany` of a
  one-row upsert, after Feast's Arrow -> protobuf conversion);
- `copy`: `feature_tables.postgres_online` with Feast's local engine (the same protos, COPY +
  one upsert);
- `bulk_serial`: that store with `feature_tables.bulk_engine` writing one batch at a time (rows
  encoded from Arrow by column, sorted by key, COPY + one upsert);
- `bulk`: the same engine as the stack profile's feature_store.yaml sets it (`write_concurrency`
  batches at once).

Reported: seconds and feature rows/s (entities x features) of each, the machine's load, and
the ratios against `bulk`. The database is dropped afterwards. Writes
/tmp/mat/materialize_ab.json (`--peers` picks a subset: Feast's stock write is slow at 1M).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "materialize.json"
PEERS = ("feast_postgres", "copy", "bulk_serial", "bulk")
SNAPSHOT = date(2017, 12, 31)


def run(opportunities: int, folder: Path, peers: Sequence[str] = PEERS) -> dict[str, Any]:
    import psycopg
    from feast import FeatureStore
    from feast.repo_config import RepoConfig
    from psycopg import sql
    from pydantic import SecretStr

    from feature_repo.definitions import definitions
    from feature_tables.bulk_engine import ENGINE_TYPE
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
    setups: dict[str, tuple[str, dict[str, Any] | None]] = {
        "feast_postgres": ("postgres", {"type": "local"}),
        "copy": (STORE_TYPE, {"type": "local"}),
        "bulk_serial": (STORE_TYPE, {"type": ENGINE_TYPE, "write_concurrency": 1}),
        "bulk": (STORE_TYPE, None),  # the stack profile's engine, as its yaml sets it
    }
    try:
        for name in peers:
            store_type, engine = setups[name]
            raw = repo_config(settings, folder / f"{name}.db").model_dump(
                by_alias=True, exclude_none=True
            )
            raw |= {"project": f"w_{name}", "repo_path": PROJECT_ROOT}
            raw["online_store"]["type"] = store_type
            raw["batch_engine"] = engine or raw["batch_engine"]
            out.setdefault("engines", {})[name] = raw["batch_engine"]
            store = FeatureStore(repo_path=str(PROJECT_ROOT), config=RepoConfig(**raw))
            store.apply(definitions(lake))
            widths = {v.name: len(v.features) for v in store.list_feature_views()}
            load = os.getloadavg()[0]
            started = time.perf_counter()
            counts = materialize(store)
            seconds = time.perf_counter() - started
            rows = sum(counts[v] * widths[v] for v in counts)
            out[name] = {
                "seconds": round(seconds, 2),
                "feature_rows": rows,
                "feature_rows_per_s": round(rows / seconds),
                "load_avg_1m": [round(load, 1), round(os.getloadavg()[0], 1)],  # start, end
            }
            print(f"  {name}: {out[name]}", flush=True)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as con:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            con.execute(drop.format(sql.Identifier(database)))
    out["machine_cpus"] = os.cpu_count()
    for peer in ("feast_postgres", "copy", "bulk_serial"):
        if peer in out and "bulk" in out:
            out[f"bulk_speedup_over_{peer}"] = round(
                out[peer]["seconds"] / out["bulk"]["seconds"], 2
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--opportunities", type=int, nargs="+", default=[100_000])
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    args = parser.parse_args(argv)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for opportunities in args.opportunities:
        with tempfile.TemporaryDirectory(prefix="crm-bench-write-") as folder:
            result = run(opportunities, Path(folder) / ".crm", args.peers)
        print(json.dumps(result, indent=2))
        current[str(opportunities)] = result
    temporary = RESULTS.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(current, indent=2, default=str) + "\n")
    temporary.replace(RESULTS)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

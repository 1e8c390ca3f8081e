"""Scale benchmark (`crm bench scale`): the whole chain at 100k and 1M opportunities, per step.

For each path (`--paths`) and size (`--opportunities`) the chain runs on a fresh private stack
profile: land -> validate -> features -> materialize -> PIT dataset -> train -> batch score,
each step in a process of its own (`python -m bench.scale --step NAME`), so its peak RSS is that
step's alone (the child reports `getrusage` for itself and anything it spawned). The steps call
the plain functions the Prefect flows call; nothing is skipped or stubbed.

A path is a profile switch: `single` is the `stack` profile (PostgreSQL online store and SQL
registry, DuckDB over the S3 lake, MLflow server), `cluster` is `CRM_PROFILE=cluster` (Feast's
Ray offline store and compute engine) when the checkout has that profile, else it is reported
unavailable. Both get the same private stack (own folder, ports, role and databases; nothing of a
user's stack is touched), reset before each size (`--reuse`: kept, for later steps measured
again on the data of the previous run of that size).

Writes bench/results/scale.json: seconds and peak RSS per step, the growth ratio
time(largest) / time(smallest) per step, row counts, feature rows/s of the materialisation, the
model's AUC beside the oracle's (synthetic ground truth) and, when both paths ran, whether their
point-in-time datasets agree on a sample.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import platform
import resource
import shutil
import subprocess  # nosec B404  # the bench runs its own steps and `crm stack`
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "scale.json"
WORKDIR = ROOT / ".bench-scale"
SAMPLES = ROOT / ".bench-scale-samples"  # survives the per-run reset of WORKDIR
# Which size the private stack's data is of (`--reuse` runs later steps on it).
SIZE_FILE = WORKDIR / "opportunities"
SNAPSHOT = date(2017, 12, 31)
SEED = 2
STEPS = ("land", "validate", "features", "materialize", "pit", "train", "score")
# A path is the profile its steps run under; the stack underneath is the same.
PATHS = {"single": "stack", "cluster": "cluster"}
BENCH_PASSWORD = "bench-only"  # nosec B105  # a private bench role, loopback only
# The private stack: ports and names of its own, away from a user's stack and the test stacks,
# and below Linux's ephemeral range (32768-60999; SeaweedFS also binds each port + 10000 for
# gRPC: 26333-27333, clear of the test stack's 28333-29333), where a client's outgoing
# connection could hold one just as the stack starts.
# `--slot N` (N > 0) shifts the ports by 100 x N and suffixes the role and the databases, so
# two checkouts on one machine can each run the bench without meeting.


def stack_env(slot: int = 0) -> dict[str, str]:
    """The private stack's settings for `slot`."""
    port, name = 100 * slot, f"_s{slot}" if slot else ""
    return {
        "CRM_S3_ENDPOINT_URL": f"http://127.0.0.1:{16333 + port}",
        "CRM_WEED_MASTER_PORT": str(17333 + port),
        "CRM_WEED_VOLUME_PORT": str(16334 + port),
        "CRM_WEED_FILER_PORT": str(16888 + port),
        "CRM_MLFLOW_PORT": str(15000 + port),
        "CRM_PREFECT_PORT": str(14200 + port),
        "CRM_PG_DB_FEAST_ONLINE": f"crm_bench_feast_online{name}",
        "CRM_PG_DB_FEAST_REGISTRY": f"crm_bench_feast_registry{name}",
        "CRM_PG_DB_MLFLOW": f"crm_bench_mlflow{name}",
        "CRM_PG_DB_PREFECT": f"crm_bench_prefect{name}",
        "CRM_PG_USER": f"crm_bench{name}",
        "CRM_PG_PASSWORD": BENCH_PASSWORD,
    }


EXAMPLES_FILE, LINEAGE_FILE = "examples.parquet", "lineage.json"
SAMPLE_ROWS = 2_000
STEP_TIMEOUT_S = 3_600
STACK_TIMEOUT_S = 300


# --- one step, in its own process --------------------------------------------------------------


def run_step(step: str, opportunities: int, workdir: Path) -> dict[str, Any]:
    """Run `step` of the chain in this process; its figures (seconds, rows, ...)."""
    from infra.lake import Lake
    from infra.runtime import prepare_process
    from infra.settings import get_settings

    settings = get_settings()
    prepare_process(settings)
    lake = Lake.from_settings(settings)
    day = SNAPSHOT.isoformat()
    started = time.perf_counter()
    for module in STEP_MODULES[step]:  # the libraries' import is the process's, not the step's
        importlib.import_module(module)
    imported = time.perf_counter() - started
    started = time.perf_counter()
    figures = STEP_FUNCTIONS[step](settings, lake, day, opportunities, workdir)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "import_s": round(imported, 2),
        **figures,
    }


def _land(settings: Any, lake: Any, day: str, n: int, workdir: Path) -> dict[str, Any]:
    from ingestion.landing import land
    from ingestion.synthetic import as_of, generate
    from ingestion.tables import SALES_PIPELINE

    data = as_of(generate(n, seed=SEED), SNAPSHOT)
    land(lake, data, day, code_version="bench")
    return {"rows": data.tables[SALES_PIPELINE].num_rows}


def _validate(settings: Any, lake: Any, day: str, n: int, workdir: Path) -> dict[str, Any]:
    from ingestion.tables import SALES_PIPELINE
    from validation.run import validate_snapshot

    result = validate_snapshot(lake, day, threshold=settings.quality_threshold)
    if not result.passed:
        raise SystemExit(f"validation refused the bench snapshot: {result.score}")
    counts = result.row_counts[SALES_PIPELINE]
    return {"rows": counts, "score": round(result.score.value, 4)}


def _features(settings: Any, lake: Any, day: str, n: int, workdir: Path) -> dict[str, Any]:
    from feature_tables.build import build_feature_tables
    from feature_tables.store import apply, feature_store

    counts = build_feature_tables(lake, day)
    apply(feature_store(settings), settings)
    return {"rows": int(sum(counts.values())), "rows_per_view": counts}


def _materialize(settings: Any, lake: Any, day: str, n: int, workdir: Path) -> dict[str, Any]:
    from feature_tables.store import feature_store, materialize

    store = feature_store(settings)
    started = time.perf_counter()
    counts = materialize(store)
    seconds = time.perf_counter() - started
    widths = {view.name: len(view.features) for view in store.list_feature_views()}
    feature_rows = sum(counts[name] * widths.get(name, 0) for name in counts)
    return {
        "rows": int(sum(counts.values())),
        "rows_per_view": counts,
        "feature_rows": int(feature_rows),
        "feature_rows_per_s": round(feature_rows / seconds),
        "online_store": type(store.config.online_store).__name__,
    }


def _pit(settings: Any, lake: Any, day: str, n: int, workdir: Path) -> dict[str, Any]:
    """Every example of the snapshot (1M opportunities: ~1.9M labels), written in chunks."""
    import pyarrow.parquet as pq

    from training.examples import write_examples

    examples = write_examples(settings, workdir / EXAMPLES_FILE, day)
    (workdir / LINEAGE_FILE).write_text(json.dumps(examples.lineage, default=str))
    metadata = pq.read_metadata(workdir / EXAMPLES_FILE)
    return {"rows": metadata.num_rows, "columns": metadata.num_columns}


def _train(settings: Any, lake: Any, day: str, n: int, workdir: Path) -> dict[str, Any]:
    """`crm train` on the PIT dataset: opportunities sampled as `build_examples` samples them
    (the file read batch by batch, keeping only the sampled deals' rows)."""
    from training.config import TrainingConfig
    from training.examples import read_examples
    from training.run import train

    config = TrainingConfig(n_jobs=os.cpu_count() or 1)
    examples, available = read_examples(workdir / EXAMPLES_FILE, config.max_examples, config.seed)
    lineage = json.loads((workdir / LINEAGE_FILE).read_text())
    lineage |= {"examples_available": available, "examples_sampled": len(examples)}
    config = TrainingConfig(n_jobs=config.n_jobs, max_examples=None)  # sampled above
    report = train(settings, config, examples=examples, snapshot=day, lineage=lineage)
    metrics = report.metrics
    auc, oracle = metrics["xgboost"]["auc"], metrics.get("oracle", {}).get("auc")
    return {
        "rows": len(examples),
        "examples_available": available,
        "split": report.split,
        "candidate": report.candidate,
        "promoted": bool(report.decision and report.decision.promoted),
        "xgboost_auc": round(auc, 4),
        "oracle_auc": round(oracle, 4) if oracle else None,
        "auc_vs_oracle": round(auc / oracle, 4) if oracle else None,
        "best_params": report.best_params,
    }


def _score(settings: Any, lake: Any, day: str, n: int, workdir: Path) -> dict[str, Any]:
    from serving.batch import score_snapshot

    summary = score_snapshot(settings, day)
    return {
        "rows": summary["rows"],
        "model": summary["model"],
        "explained_rows": summary["explained_rows"],
        "parts": summary["seconds"],
    }


# What each step imports before its clock starts (`import_s`; the step's own imports below
# then find them loaded): Feast, XGBoost, MLflow and Ray take seconds to import, once per process.
STEP_MODULES: dict[str, tuple[str, ...]] = {
    "land": ("ingestion.landing", "ingestion.synthetic"),
    "validate": ("validation.run",),
    "features": ("feature_tables.build", "feature_tables.store"),
    "materialize": ("feature_tables.store",),
    "pit": ("training.examples", "feature_tables.store"),
    "train": ("training.config", "training.examples", "training.run"),
    "score": ("serving.batch", "feature_tables.store"),
}

STEP_FUNCTIONS: dict[str, Callable[[Any, Any, str, int, Path], dict[str, Any]]] = {
    "land": _land,
    "validate": _validate,
    "features": _features,
    "materialize": _materialize,
    "pit": _pit,
    "train": _train,
    "score": _score,
}


def _peak_rss_mb() -> float:
    """The highest RSS of this process or of any process it waited for (Linux: kB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


# --- the driver ----------------------------------------------------------------------------------


def profile_available(profile: str) -> str | None:
    """Why `profile` cannot run from this checkout, or None when it can."""
    from infra.settings import Profile

    if profile not in {p.value for p in Profile}:
        return f"this checkout has no `{profile}` profile (infra.settings.Profile)"
    if not (ROOT / "feature_repo" / profile / "feature_store.yaml").is_file():
        return f"feature_repo/{profile}/feature_store.yaml is missing"
    return None


def path_env(path: str, slot: int = 0) -> dict[str, str]:
    """The environment of a path's processes: its profile on the bench's private stack."""
    state = WORKDIR / "stack"
    return {
        **os.environ,
        **stack_env(slot),
        "CRM_PROFILE": PATHS[path],
        "CRM_STACK_DIR": str(state),
        "CRM_HOME": str(WORKDIR / "home"),
        # DuckDB's S3 settings that `crm stack up` stores stay in the bench's own home.
        "HOME": str(state / "home"),
        # OpenMP threads that wait by spinning are 3-10x slower on a shared 2-core machine
        # (XGBoost with nthread=2 under load, measured); the passive policy yields the core.
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def reset_stack(env: dict[str, str]) -> None:
    """The private stack stopped, its data and databases dropped, then started afresh."""
    import psycopg
    from psycopg import sql

    from infra.settings import Settings

    fields: dict[str, Any] = {
        k.removeprefix("CRM_").lower(): v for k, v in env.items() if k.startswith("CRM_")
    }
    settings = Settings(**{**fields, "profile": "stack"}, _env_file=None)  # type: ignore[call-arg]
    _crm(["stack", "down"], env)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    with psycopg.connect(settings.pg_admin_dsn, autocommit=True, connect_timeout=5) as con:
        for database in settings.pg_databases:
            if not database.startswith("crm_bench"):
                raise SystemExit(f"refusing to drop {database}: not a bench database")
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            con.execute(drop.format(sql.Identifier(database)))
    _crm(["stack", "up"], env)


def _crm(args: list[str], env: dict[str, str]) -> None:
    crm = Path(sys.executable).parent / "crm"
    subprocess.run(  # nosec B603  # our own CLI, fixed arguments
        [str(crm), *args], env=env, cwd=ROOT, check=True, timeout=STACK_TIMEOUT_S
    )


def run_chain(
    path: str,
    opportunities: int,
    steps: Sequence[str],
    on_step: Callable[[dict[str, Any]], None] = lambda results: None,
    *,
    reuse: bool = False,
    slot: int = 0,
) -> dict[str, Any]:
    """Every step of the chain for one size, each in its own process; figures per step.

    `on_step` gets the figures so far after each step (the driver saves them: a long run that
    is stopped keeps what it measured). Each step also records the machine's 1-minute load
    average when it started, since the machine may be shared. With `reuse` the private stack
    keeps the data of the previous run of the same size, so later steps (train, score) can be
    measured again without landing and materialising anew.
    """
    env = path_env(path, slot)
    if reuse:
        reused = SIZE_FILE.read_text().strip() if SIZE_FILE.exists() else None
        if reused != str(opportunities):
            raise SystemExit(
                f"--reuse: the private stack holds no earlier run of {opportunities:,} "
                f"opportunities ({reused or 'none'}): run the earlier steps without --reuse first."
            )
        _crm(["stack", "up"], env)
    else:
        reset_stack(env)
        SIZE_FILE.write_text(f"{opportunities}\n")
    workdir = WORKDIR / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for step in steps:
        command = [sys.executable, "-m", "bench.scale", "--step", step]
        command += ["--opportunities", str(opportunities), "--workdir", str(workdir)]
        load = round(os.getloadavg()[0], 1)
        started = time.perf_counter()
        done = subprocess.run(  # nosec B603  # this module, fixed arguments
            command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=STEP_TIMEOUT_S
        )
        wall = round(time.perf_counter() - started, 2)
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-6000:], sep="\n", file=sys.stderr)
            results[step] = {"failed": True, "process_s": wall, "error": done.stderr[-1500:]}
            on_step(results)
            break
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        results[step] = {**figures, "process_s": wall, "load_avg_1m_at_start": load}
        on_step(results)
        print(
            f"  {path} {opportunities:>9,} {step:<12} {figures['seconds']:8.1f} s "
            f"{figures['peak_rss_mb']:8.0f} MB  rows {figures.get('rows', '-')}",
            flush=True,
        )
    sample = workdir / EXAMPLES_FILE
    if sample.exists():
        SAMPLES.mkdir(exist_ok=True)
        kept = SAMPLES / f"{path}-{opportunities}-examples.parquet"
        _sample_examples(sample, kept)
    _crm(["stack", "down"], env)
    return results


def _sample_examples(source: Path, target: Path) -> None:
    """A fixed sample of the PIT dataset (the same keys on every path) for the equality check."""
    import pandas as pd

    frame = pd.read_parquet(source)
    keys = ["opportunity_id", "event_timestamp"]
    frame = frame.sort_values(keys, ignore_index=True)
    step = max(1, len(frame) // SAMPLE_ROWS)
    frame.iloc[::step].to_parquet(target, index=False)


def compare_paths(opportunities: int) -> dict[str, Any] | None:
    """Do both paths' PIT datasets hold the same rows and values on the sample? None: one ran."""
    import pandas as pd

    files = {p: SAMPLES / f"{p}-{opportunities}-examples.parquet" for p in PATHS}
    if not all(f.exists() for f in files.values()):
        return None
    single, cluster = (pd.read_parquet(f) for f in files.values())
    columns = sorted(set(single.columns) & set(cluster.columns))
    try:
        pd.testing.assert_frame_equal(
            single[columns], cluster[columns], check_dtype=False, check_exact=False, rtol=1e-9
        )
        return {"sample_rows": len(single), "columns": len(columns), "equal": True}
    except AssertionError as exc:
        return {"sample_rows": len(single), "equal": False, "difference": str(exc)[:500]}


def growth(runs: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """time(largest) / time(smallest) per step, over the sizes that ran."""
    sizes = sorted(runs, key=int)
    if len(sizes) < 2:
        return {}
    low, high = runs[sizes[0]], runs[sizes[-1]]
    out: dict[str, float | None] = {}
    for step in STEPS:
        a, b = low.get(step, {}).get("seconds"), high.get(step, {}).get("seconds")
        out[step] = round(b / a, 2) if a and b else None
    return out


def save(paths: dict[str, Any], sizes: Sequence[int]) -> None:
    """Write bench/results/scale.json (atomically: a whole file or the previous one)."""
    equal = {str(n): compare_paths(n) for n in sizes}
    result = {
        "benchmark": "land -> validate -> features -> materialize -> PIT -> train -> batch score",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        },
        "goals": {
            "peak_rss_mb": 2048,
            "growth_ratio": 12,
            "materialize_feature_rows_per_s": 50_000,
        },
        "paths": paths,
        "paths_equal_on_sample": {n: c for n, c in equal.items() if c is not None},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    temporary = RESULTS.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(result, indent=2, default=str) + "\n")
    temporary.replace(RESULTS)


def _keep(
    paths: dict[str, Any],
    path: str,
    runs: dict[str, Any],
    n: int,
    sizes: Sequence[int],
    reuse: bool,
    results: dict[str, Any],
) -> None:
    """Record one size's figures so far and save the file. A `--reuse` run replaces the steps
    it measured again and keeps the size's other steps; a fresh run replaces the size."""
    runs[str(n)] = {**runs.get(str(n), {}), **results} if reuse else results
    paths[path] = {"profile": PATHS[path], "runs": runs, "growth_ratio": growth(runs)}
    save(paths, sizes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--opportunities", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--paths", nargs="+", choices=sorted(PATHS), default=["single"])
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the data of the previous run of the same size (one size per run)",
    )
    parser.add_argument(
        "--slot",
        type=int,
        default=0,
        help="a private stack of its own (ports + 100 x N): two checkouts on one machine",
    )
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:  # a child: one step, its figures as the last line of stdout
        figures = run_step(args.step, args.opportunities[0], args.workdir)
        print(json.dumps({**figures, "peak_rss_mb": _peak_rss_mb()}, default=str), flush=True)
        return 0
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    paths: dict[str, Any] = previous.get("paths", {})
    for path in args.paths:
        reason = profile_available(PATHS[path])
        if reason:
            print(f"{path}: unavailable: {reason}", flush=True)
            paths[path] = {"profile": PATHS[path], "unavailable": reason}
            continue
        entry = paths.get(path, {}) if "runs" in paths.get(path, {}) else {}
        runs: dict[str, Any] = entry.get("runs", {})
        for n in args.opportunities:
            print(f"{path}: {n:,} opportunities", flush=True)
            keep = functools.partial(_keep, paths, path, runs, n, args.opportunities, args.reuse)
            run_chain(path, n, args.steps, keep, reuse=args.reuse, slot=args.slot)
    save(paths, args.opportunities)
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

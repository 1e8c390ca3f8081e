"""Batch scoring benchmark (`crm bench batch-scoring`): every open deal of a large snapshot.

In a private embedded profile (its own folder; nothing of the user's is touched):
  1. a champion trained on a small history (`--train-opportunities`, snapshot 2017-12-30);
  2. a snapshot of `--opportunities` synthetic deals (2017-12-31) landed, validated and its
     features built (timed, for context);
  3. every open deal of it scored into the lake by `serving.batch.score_snapshot`, the path of
     `crm score --all`: seconds per part (read, point-in-time features, encode, predict,
     explain, write) and the peak RSS of the process while it scores.
The model part's throughput is reported with its peer from the same run: XGBoost's own
`predict` on the same matrix (the floor the encoding and the explanations add to).
Writes bench/results/batch_scoring.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "batch_scoring.json"
TRAIN_SNAPSHOT, SCORE_SNAPSHOT = "2017-12-30", "2017-12-31"
T = TypeVar("T")


@contextmanager
def peak_rss() -> Iterator[dict[str, float]]:
    """The highest resident set size of this process while the block runs (sampled, 50 ms)."""
    process, peak, stop = psutil.Process(), {"mb": 0.0}, threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak["mb"] = max(peak["mb"], process.memory_info().rss / 2**20)

    sampler = threading.Thread(target=sample, daemon=True)
    peak["mb"] = process.memory_info().rss / 2**20
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()
        peak["mb"] = round(peak["mb"], 1)


def timed(seconds: dict[str, float], name: str, call: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = call()
    seconds[name] = round(time.perf_counter() - started, 2)
    print(f"  {name}: {seconds[name]:.1f} s", flush=True)
    return result


def run(opportunities: int, train_opportunities: int, home: Path) -> dict[str, Any]:
    os.environ.update({"CRM_PROFILE": "local", "CRM_HOME": str(home)})
    from feature_tables.build import build_feature_tables
    from infra.lake import Lake
    from infra.runtime import prepare_process
    from infra.settings import get_settings
    from ingestion.landing import land
    from ingestion.synthetic import as_of, generate
    from serving.batch import score_snapshot
    from training.config import TrainingConfig
    from training.run import train
    from validation.run import validate_snapshot

    settings = get_settings()
    prepare_process(settings)
    lake = Lake.from_settings(settings)
    setup: dict[str, float] = {}

    def prepare(snapshot: str, n: int, seed: int) -> None:
        data = as_of(generate(n, seed=seed), date.fromisoformat(snapshot))
        land(lake, data, snapshot, code_version="bench")
        validate_snapshot(lake, snapshot, threshold=0.0)
        build_feature_tables(lake, snapshot)

    timed(setup, "champion_data", lambda: prepare(TRAIN_SNAPSHOT, train_opportunities, 1))
    report = timed(
        setup,
        "champion_train",
        lambda: train(settings, TrainingConfig(search_size=2), snapshot=TRAIN_SNAPSHOT),
    )
    if not (report.decision and report.decision.promoted):
        raise SystemExit(f"No champion to score with: {report.decision}")
    timed(setup, "land_validate_features", lambda: prepare(SCORE_SNAPSHOT, opportunities, 2))
    with peak_rss() as peak:
        started = time.perf_counter()
        summary = score_snapshot(settings, SCORE_SNAPSHOT)
        wall = time.perf_counter() - started
    parts = summary["seconds"]
    rows = summary["rows"]
    model_part = parts["score"]
    return {
        "opportunities": opportunities,
        "open_deals_scored": rows,
        "model": summary["model"],
        "end_to_end_s": round(wall, 2),
        "seconds": parts,
        "model_part_deals_per_s": round(rows / model_part),
        "peer_xgboost_predict_deals_per_s": round(rows / max(parts["score_predict"], 1e-9)),
        "model_part_vs_predict_alone": round(model_part / max(parts["score_predict"], 1e-9), 1),
        "features_share_of_end_to_end": round(parts["features"] / wall, 3),
        "peak_rss_mb_while_scoring": peak["mb"],
        "setup_seconds": setup,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opportunities", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--train-opportunities", type=int, default=20_000)
    args = parser.parse_args(argv)
    runs = []
    for n in args.opportunities:
        print(f"batch scoring, {n:,} opportunities", flush=True)
        with tempfile.TemporaryDirectory(prefix="crm-bench-batch-") as folder:
            runs.append(run(n, args.train_opportunities, Path(folder) / ".crm"))
        print(json.dumps(runs[-1], indent=2), flush=True)
    result = {
        "benchmark": "batch scoring of every open deal (crm score --all)",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

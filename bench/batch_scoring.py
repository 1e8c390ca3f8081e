"""Batch scoring benchmark (`crm bench batch-scoring`): every open deal of a large snapshot.

In a private embedded profile (its own folder; nothing of the user's is touched):
  1. a champion trained on a small history (`--train-opportunities`, snapshot 2017-12-30);
  2. the daily chain on a snapshot of `--opportunities` synthetic deals (2017-12-31): land,
     validate, features, materialise (each timed; the functions the flows call), then
  3. every open deal of it scored into the lake by `serving.batch.score_snapshot`, the path of
     `crm score --all`: seconds per part (read, point-in-time features, encode, predict,
     explain, write) and the peak RSS of the process while it scores.
The model part (encode + predict) is reported with its peer from the same run, XGBoost's own
`predict` on the same matrix, and apart from the explanations (exact TreeSHAP contributions for
the top five), which cost the most.
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
TRAIN_SNAPSHOT, SCORE_SNAPSHOT = date(2017, 12, 30), date(2017, 12, 31)
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

    def chain(snapshot: date, n: int, seed: int, seconds: dict[str, float]) -> None:
        """The daily chain's steps before scoring, each timed (the functions its flows call)."""
        timed(seconds, "land", lambda: _land(land, lake, as_of(generate(n, seed=seed), snapshot)))
        day = snapshot.isoformat()
        timed(seconds, "validate", lambda: validate_snapshot(lake, day, threshold=0.0))
        timed(seconds, "features", lambda: _features(settings, lake, day))

    timed(
        setup,
        "champion_data",
        lambda: chain(TRAIN_SNAPSHOT, train_opportunities, 1, {}),
    )
    report = timed(
        setup,
        "champion_train",
        lambda: train(settings, TrainingConfig(search_size=2), snapshot=TRAIN_SNAPSHOT.isoformat()),
    )
    if not (report.decision and report.decision.promoted):
        raise SystemExit(f"No champion to score with: {report.decision}")
    steps: dict[str, float] = {}
    chain(SCORE_SNAPSHOT, opportunities, 2, steps)
    timed(steps, "materialize", lambda: _materialize(settings))
    with peak_rss() as peak:
        started = time.perf_counter()
        summary = score_snapshot(settings, SCORE_SNAPSHOT.isoformat())
        wall = time.perf_counter() - started
    steps["score"] = round(wall, 2)
    parts = summary["seconds"]
    rows = summary["rows"]
    model_part = parts["score_encode"] + parts["score_predict"]
    return {
        "opportunities": opportunities,
        "open_deals_scored": rows,
        "model": summary["model"],
        "chain_step_seconds": steps,
        "end_to_end_s": round(wall, 2),
        "seconds": parts,
        "model_part_deals_per_s": round(rows / model_part),
        "with_explanations_deals_per_s": round(rows / parts["score"]),
        "peer_xgboost_predict_deals_per_s": round(rows / max(parts["score_predict"], 1e-9)),
        "model_part_vs_predict_alone": round(model_part / max(parts["score_predict"], 1e-9), 1),
        "explanations_share_of_scoring": round(parts["score_explain"] / parts["score"], 3),
        "features_share_of_end_to_end": round(parts["features"] / wall, 3),
        "peak_rss_mb_while_scoring": peak["mb"],
        "setup_seconds": setup,
    }


def _land(land: Callable[..., Any], lake: Any, data: Any) -> None:
    """Land `data` as the snapshot of its own day (the synthetic `as_of`, else the last day)."""
    land(lake, data, str(data.checksums.get("as_of", SCORE_SNAPSHOT)), code_version="bench")


def _features(settings: Any, lake: Any, snapshot: str) -> None:
    """What the `features` flow does: build the snapshot's tables, re-apply the definitions."""
    from feature_tables.build import build_feature_tables
    from feature_tables.store import apply, feature_store

    build_feature_tables(lake, snapshot)
    apply(feature_store(settings), settings)


def _materialize(settings: Any) -> dict[str, int]:
    from feature_tables.store import feature_store, materialize

    return materialize(feature_store(settings))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opportunities", type=int, nargs="+", default=[8_800, 1_000_000])
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

"""`crm`: the project's own commands — the pipeline steps, the demo, deployments, the local stack,
benchmarks and env exports.

The tools' own CLIs (`feast`, `prefect`, `mlflow`, `bentoml`, `streamlit`) stay the way to drive
those tools; this CLI only adds what is the project's own. Each step command runs the stage's
Prefect flow and prints its summary (a table, or JSON with `--json`).
"""

from __future__ import annotations

import contextlib
import shlex
from typing import Any

import typer

from crm.console import (
    console,
    fail,
    load_settings,
    print_json,
    print_summary,
    run_flow,
    run_step,
)
from crm.stack_cli import stack_app
from infra.settings import Profile

app = typer.Typer(help="crm-feature-platform: land, validate, featurize, train and serve.")
app.add_typer(stack_app, name="stack")
bench_app = typer.Typer(help="Benchmarks; results under bench/results/ (never timed tests).")
app.add_typer(bench_app, name="bench")

SOURCE = typer.Option(
    "synthetic", help="synthetic | synthetic:drift=YYYY-MM-DD[/kinds] | kaggle | dir:PATH"
)
NEW_SNAPSHOT = typer.Option(None, help="YYYY-MM-DD; today (UTC) by default")
VALIDATED_SNAPSHOT = typer.Option(None, help="YYYY-MM-DD; the latest validated one by default")
OPPORTUNITIES = typer.Option(None, help="Synthetic only: number of opportunities")
SIGNAL = typer.Option(
    None, help="Synthetic only: strength of the planted signal, 0 (none) to 1 (the default)"
)
AS_JSON = typer.Option(False, "--json", help="Print the summary as JSON")


def check_source_first(
    name: str, source: str, opportunities: int | None, signal: float | None = None
) -> None:
    """A source that cannot work fails here, before the flow (and Prefect) start."""
    from ingestion.sources import check_source

    run_step(name, lambda: check_source(source, opportunities, signal))


@app.command("land")
def land(
    source: str = SOURCE,
    snapshot: str | None = NEW_SNAPSHOT,
    opportunities: int | None = OPPORTUNITIES,
    seed: int = typer.Option(42, help="Synthetic only: random seed"),
    signal: float | None = SIGNAL,
    as_json: bool = AS_JSON,
) -> None:
    """Land a source as a raw snapshot in the lake (Prefect flow `land`)."""
    check_source_first("land", source, opportunities, signal)
    params = {
        "source": source,
        "snapshot": snapshot,
        "opportunities": opportunities,
        "seed": seed,
        "signal": signal,
    }
    print_summary("landed", run_flow("land", "flows.land:land", as_json=as_json, **params), as_json)


@app.command("validate")
def validate(
    snapshot: str | None = typer.Option(None, help="YYYY-MM-DD; the latest landed one by default"),
    threshold: float | None = typer.Option(
        None, help="Minimum quality score; CRM_QUALITY_THRESHOLD (default 0.9) if omitted"
    ),
    as_json: bool = AS_JSON,
) -> None:
    """Check a landed snapshot against the data contracts; gate downstream (flow `validate`)."""
    params = {"snapshot": snapshot, "threshold": threshold}
    summary = run_flow("validate", "flows.validate:validate", as_json=as_json, **params)
    print_summary("validated", summary, as_json)


@app.command("features")
def features(snapshot: str | None = VALIDATED_SNAPSHOT, as_json: bool = AS_JSON) -> None:
    """Compute point-in-time feature tables into the lake (flow `features`)."""
    summary = run_flow("features", "flows.features:features", as_json=as_json, snapshot=snapshot)
    print_summary("feature rows per view", summary, as_json)


@app.command("materialize")
def materialize(
    full: bool = typer.Option(
        False, "--full", help="Reload every row (late facts dated before the last load)"
    ),
    as_json: bool = AS_JSON,
) -> None:
    """`feast apply` and materialise-incremental into the online store (flow `materialize`)."""
    summary = run_flow(
        "materialize", "flows.materialize:materialize_flow", as_json=as_json, full=full
    )
    print_summary("materialised entities per view", summary, as_json)


@app.command("train")
def train(snapshot: str | None = VALIDATED_SNAPSHOT, as_json: bool = AS_JSON) -> None:
    """Train baseline + XGBoost on Feast data; log to MLflow; gate the registry (flow `train`)."""
    summary = run_flow("train", "flows.train:train", as_json=as_json, snapshot=snapshot)
    if as_json:
        print_json(summary)
        return
    from training.summary import print_summary as print_training

    print_training(summary, console)


@app.command("score")
def score(
    all_open: bool = typer.Option(
        False, "--all", help="Score every open deal of the snapshot into the lake"
    ),
    snapshot: str | None = typer.Option(
        None, help="YYYY-MM-DD; the current feature build's snapshot by default"
    ),
    as_json: bool = AS_JSON,
) -> None:
    """Batch-score every open deal with the champion into predictions/ (flow `score`)."""
    if not all_open:
        fail(
            "score",
            ValueError("pass --all to score every open deal (one deal: POST /score)"),
            code=2,
        )
    if snapshot:  # a snapshot without features fails here, before Prefect starts
        from feature_tables.published import feature_build
        from infra.lake import Lake

        run_step("score", lambda: feature_build(Lake.from_settings(load_settings()), snapshot))
    summary = run_flow("score", "flows.score:score", as_json=as_json, snapshot=snapshot)
    print_summary("batch scores", summary, as_json)


@app.command("monitor")
def monitor(
    snapshot: str | None = typer.Option(
        None, help="YYYY-MM-DD; the current feature build's snapshot by default"
    ),
    as_json: bool = AS_JSON,
) -> None:
    """Drift against the champion's training data, realised performance; writes
    reports/monitoring/snapshot=D/, logs to MLflow, requests a retrain on a breach (flow
    `monitor`)."""
    if snapshot:  # a snapshot without features fails here, before Prefect starts
        from feature_tables.published import feature_build
        from infra.lake import Lake

        run_step("monitor", lambda: feature_build(Lake.from_settings(load_settings()), snapshot))
    summary = run_flow("monitor", "flows.monitor:monitor", as_json=as_json, snapshot=snapshot)
    print_summary("monitoring", summary, as_json)


@app.command("backfill")
def backfill(
    start: str = typer.Option(..., "--from", help="First snapshot, YYYY-MM-DD"),
    end: str = typer.Option(..., "--to", help="Last snapshot, YYYY-MM-DD (included)"),
    as_json: bool = AS_JSON,
) -> None:
    """Recompute the features and batch scores of every validated snapshot in a range, then
    materialise the newest (flow `backfill`; idempotent)."""
    summary = run_flow("backfill", "flows.daily:backfill", as_json=as_json, start=start, end=end)
    print_summary("backfilled", summary, as_json)


@app.command("pipeline")
def pipeline(
    source: str = SOURCE,
    snapshot: str | None = NEW_SNAPSHOT,
    opportunities: int | None = OPPORTUNITIES,
    signal: float | None = SIGNAL,
    as_json: bool = AS_JSON,
) -> None:
    """land → validate → features → materialize → train/promote (flow `crm-pipeline`)."""
    check_source_first("pipeline", source, opportunities, signal)
    params = {
        "source": source,
        "snapshot": snapshot,
        "opportunities": opportunities,
        "signal": signal,
    }
    summary = run_flow("pipeline", "flows.pipeline:pipeline", as_json=as_json, **params)
    if as_json:
        print_json(summary)
        return
    from flows.pipeline import summary_markdown

    console.print(summary_markdown(summary), markup=False, highlight=False)


@app.command("demo")
def demo(
    scorer_port: int = typer.Option(3000, help="Port of the BentoML scorer"),
    explorer_port: int = typer.Option(8501, help="Port of the Streamlit explorer"),
    wait: bool = typer.Option(True, help="Keep serving until Ctrl-C (--no-wait: stop at once)"),
    skip_pipeline: bool = typer.Option(False, help="Serve what the last pipeline produced"),
) -> None:
    """The whole path: the pipeline, then the scorer and the explorer until Ctrl-C."""
    import time

    from crm.demo import serve

    started = time.perf_counter()
    if not skip_pipeline:
        pipeline(source="synthetic", snapshot=None, opportunities=None, signal=None, as_json=False)
    settings = load_settings()
    run_step(
        "demo",
        lambda: serve(
            settings, scorer_port, explorer_port, wait=wait, started=started, say=console.print
        ),
    )


@app.command("edge")
def edge(
    port: int = typer.Option(8080, help="Port the edge listens on (127.0.0.1)"),
    upstream: str = typer.Option("127.0.0.1:3000", help="host:port of a running scorer"),
) -> None:
    """nginx in front of a running scorer until Ctrl-C or SIGTERM: overload (429) and oversized
    bodies (413) are turned away before Python, with the scorer's own limits (serving/edge.py)."""
    import time

    from crm.demo import interrupt_on_signals
    from serving.edge import start_edge

    settings = load_settings()

    def run() -> None:
        interrupt_on_signals()  # SIGTERM too unwinds the block below, which stops nginx
        state = settings.stack_dir / "edge"
        with start_edge(settings, upstream=upstream, port=port, state_dir=state) as running:
            console.print(f"Edge {running.url} -> http://{upstream} (Ctrl-C stops it)")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(1)

    run_step("edge", run)


@app.command("deploy")
def deploy() -> None:
    """Register prefect.yaml's deployments (and the process work pool) with the Prefect server."""
    from crm.deploy import DeployError
    from crm.deploy import deploy as deploy_all

    try:
        output = deploy_all(load_settings())
    except DeployError as exc:
        fail("deploy", exc)
    console.print(output, markup=False, highlight=False)


@app.command("worker")
def worker() -> None:
    """Start a Prefect process worker for the deployments (Ctrl-C stops it)."""
    import os

    from crm.deploy import DeployError, prefect_env, worker_command

    try:
        env = prefect_env(load_settings())
    except DeployError as exc:
        fail("worker", exc)
    command = worker_command()
    os.execve(command[0], command, env)  # nosec B606  # the worker's fixed argv, no shell


@app.command("env")
def env(profile: Profile = typer.Option(None, help="Defaults to CRM_PROFILE.")) -> None:
    """Print `export` lines so `feast`, `mlflow` and `prefect` CLIs use the active profile.

    On the stack profile it also stores DuckDB's path-style setting for the lake bucket (no
    endpoint, no key: the `feast` CLI's DuckDB takes those from the exports); never for prod.
    """
    from crm.console import errors
    from infra.duck import DuckDBSetupError, persist_s3_setup

    settings = load_settings(profile=profile) if profile else load_settings()
    try:
        persist_s3_setup(settings)
    except DuckDBSetupError as exc:
        fail("env", exc)
    exports = settings.env_exports()
    if "'" in exports.get("CRM_PG_USER", "") + exports.get("CRM_PG_PASSWORD", ""):
        errors.print(
            "[yellow]warning:[/yellow] CRM_PG_USER or CRM_PG_PASSWORD holds a single quote, "
            "which the `feast` CLI cannot read from feature_store.yaml; the `crm` commands can."
        )
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")


@bench_app.command("serving")
def bench_serving(
    sequential: int = typer.Option(1_000, help="Sequential requests per target"),
    requests: int = typer.Option(5_000, help="Requests per concurrency level"),
    concurrency: list[int] = typer.Option([16, 64], help="Concurrency levels (repeatable)"),
    only: list[str] = typer.Option(
        [], help="Targets: service, nolog, feast, mlflow, empty (repeatable)"
    ),
) -> None:
    """The scorer with and without its prediction log, against `feast serve`, `mlflow models
    serve` and an empty BentoML endpoint, same run."""
    from bench.serving import main as bench_main

    argv: list[Any] = ["--sequential", sequential, "--requests", requests, "--concurrency"]
    argv += concurrency
    if only:
        argv += ["--only", *only]
    raise typer.Exit(run_step("bench serving", lambda: bench_main([str(a) for a in argv])))


@bench_app.command("batch-scoring")
def bench_batch_scoring(
    opportunities: list[int] = typer.Option(
        [8_800, 1_000_000], help="Snapshot sizes to score (repeatable)"
    ),
    train_opportunities: int = typer.Option(20_000, help="Size of the champion's history"),
) -> None:
    """Every open deal of large snapshots scored into the lake -> bench/results/."""
    from bench.batch_scoring import main as bench_main

    argv = ["--opportunities", *map(str, opportunities)]
    argv += ["--train-opportunities", str(train_opportunities)]
    raise typer.Exit(run_step("bench batch-scoring", lambda: bench_main(argv)))


@bench_app.command("monitoring")
def bench_monitoring() -> None:
    """Four weekly snapshots, the last drifted: the monitoring report's figures ->
    bench/results/monitoring.json."""
    from bench.monitoring import main as bench_main

    raise typer.Exit(run_step("bench monitoring", lambda: bench_main([])))


@bench_app.command("scale")
def bench_scale(
    opportunities: list[int] = typer.Option(
        [100_000, 1_000_000], help="Snapshot sizes (repeatable); the growth ratio spans them"
    ),
    paths: list[str] = typer.Option(
        ["single"], help="single (stack profile) | cluster (the Ray profile), repeatable"
    ),
) -> None:
    """Each step of the chain in its own process at each size: time, peak RSS -> bench/results/."""
    from bench.scale import PATHS
    from bench.scale import main as bench_main

    if unknown := sorted(set(paths) - set(PATHS)):
        fail(
            "bench scale",
            ValueError(f"no path {', '.join(unknown)}; choose from {', '.join(PATHS)}"),
            code=2,
        )
    argv = ["--opportunities", *map(str, opportunities), "--paths", *paths]
    raise typer.Exit(run_step("bench scale", lambda: bench_main(argv)))


@bench_app.command("reliability")
def bench_reliability(
    only: list[str] = typer.Option([], help="Scenario names (repeatable); all if omitted"),
) -> None:
    """Fault, load and fuzz scenarios on the stack -> bench/results/reliability.json."""
    from bench.reliability.run import RESULTS, SCENARIOS, run

    if only and (unknown := sorted(set(only) - set(SCENARIOS))):
        fail(
            "bench reliability",
            ValueError(f"no scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"),
            code=2,
        )
    results = run_step("bench reliability", lambda: run(load_settings(), only))
    for name, outcome in results["scenarios"].items():
        console.print(f"  {'passed' if outcome.get('passed') else 'FAILED':7} {name}")
    console.print(f"written to {RESULTS}")
    if not results["passed"]:
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()

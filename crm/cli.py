"""`crm`: the project's own commands (the stack, the pipeline steps, env exports).

The tools' own CLIs (`feast`, `prefect`, `mlflow`, `bentoml`, `streamlit`) stay the way to drive
those tools; this CLI only adds what is the project's own.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from collections.abc import Callable
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from infra.errors import CRMError
from infra.settings import Profile, Settings

app = typer.Typer(help="crm-feature-platform: land, validate, featurize, train and serve.")
stack_app = typer.Typer(help="The local stack without Docker (PostgreSQL, S3, MLflow, Prefect).")
app.add_typer(stack_app, name="stack")
bench_app = typer.Typer(help="Benchmarks; results under bench/results/ (never timed tests).")
app.add_typer(bench_app, name="bench")
console = Console()
# Errors go to stderr, one line each however long: they are read, and grepped.
errors = Console(stderr=True, soft_wrap=True)


def load_settings() -> Settings:
    """Settings for the active profile, or a clean exit naming what to fix."""
    try:
        return Settings()
    except ValidationError as exc:
        messages = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        errors.print(f"[red]Invalid settings:[/red] {escape(str(messages))}")
        raise typer.Exit(2) from exc


def stack_settings() -> Settings:
    """The stack's own settings: the active profile's, with stack defaults when it is `local`."""
    settings = load_settings()
    if settings.profile is Profile.LOCAL:
        return Settings(profile=Profile.STACK)
    return settings


@stack_app.command("up")
def stack_up() -> None:
    """Start (or confirm) PostgreSQL, S3, MLflow and Prefect; idempotent."""
    from infra.stack import Stack, StackError

    settings = stack_settings()
    stack = Stack(settings)
    try:
        stack.up(on_event=lambda msg: console.print(f"  {msg}"))
        from infra.duck import persist_s3_setup

        persist_s3_setup(settings)  # the `feast` CLI's DuckDB reads the lake through this
    except StackError as exc:
        errors.print(f"[red]stack up failed:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    _print_status(stack)


@stack_app.command("down")
def stack_down() -> None:
    """Stop what `crm stack up` started (PostgreSQL, a system service, keeps running)."""
    from infra.stack import Stack, StackError

    try:
        stopped = Stack(stack_settings()).down(on_event=lambda msg: console.print(f"  {msg}"))
    except StackError as exc:
        errors.print(f"[red]stack down failed:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    if not stopped:
        console.print("Nothing to stop: no service started by `crm stack up` is running.")


@stack_app.command("status")
def stack_status() -> None:
    """A table of service, URL and health; exit 1 if any service is unhealthy."""
    from infra.stack import Stack

    healthy = _print_status(Stack(stack_settings()))
    if not healthy:
        raise typer.Exit(1)


@stack_app.command("logs")
def stack_logs(
    service: str | None = typer.Argument(
        None, help="postgresql, s3, mlflow or prefect; all if omitted"
    ),
    lines: int = typer.Option(40, "--lines", "-n"),
) -> None:
    """The last lines of each service's log under .stack/logs/."""
    from infra.stack import Stack

    stack = Stack(stack_settings())
    names = [service] if service else [s.name for s in stack.services if s.command]
    for name in names:
        console.rule(name)
        console.print(stack.tail(name, lines), markup=False, highlight=False)


def _print_status(stack: object) -> bool:
    from infra.stack import Stack

    assert isinstance(stack, Stack)
    table = Table(title="crm stack")
    for column in ("service", "url", "health", "pid", "note"):
        table.add_column(column)
    statuses = stack.status()
    for st in statuses:
        health = "[green]healthy[/green]" if st.healthy else "[red]down[/red]"
        table.add_row(st.name, st.url, health, str(st.pid or "-"), st.detail)
    console.print(table)
    return all(st.healthy for st in statuses)


def run_step(name: str, step: Callable[[], Any], *, quiet: bool = False) -> Any:
    """Run a pipeline step; errors written for users are printed without a traceback.

    `quiet` sends what libraries print (Feast's progress, say) to stderr, so that stdout holds
    only the `--json` summary.
    """
    from infra.runtime import prepare_process, quiet_user_errors

    prepare_process(load_settings())
    quiet_user_errors(cli=True)  # the error that ends a run is printed once, below
    try:
        if quiet:
            with contextlib.redirect_stdout(sys.stderr):
                return step()
        return step()
    except CRMError as exc:
        errors.print(f"[red]{name} failed:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc


def print_summary(title: str, summary: Any, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    table = Table(title=title, show_header=False)
    for key, value in (summary or {}).items():
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
        table.add_row(str(key), shown)
    console.print(table)


@app.command("land")
def land(
    source: str = typer.Option("synthetic", help="synthetic | kaggle | dir:PATH"),
    snapshot: str | None = typer.Option(None, help="YYYY-MM-DD; today (UTC) by default"),
    opportunities: int | None = typer.Option(None, help="Synthetic only: number of opportunities"),
    seed: int = typer.Option(42, help="Synthetic only: random seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
) -> None:
    """Land a source as a raw snapshot in the lake (Prefect flow `land`)."""
    from ingestion.sources import check_source

    # A source that cannot work fails here, before the flow (and Prefect) start.
    run_step("land", lambda: check_source(source, opportunities))

    def step() -> Any:
        from flows.land import land as land_flow

        return land_flow(source=source, snapshot=snapshot, opportunities=opportunities, seed=seed)

    print_summary("landed", run_step("land", step, quiet=as_json), as_json)


@app.command("validate")
def validate(
    snapshot: str | None = typer.Option(None, help="YYYY-MM-DD; the latest landed one by default"),
    threshold: float | None = typer.Option(
        None, help="Minimum quality score; CRM_QUALITY_THRESHOLD (default 0.9) if omitted"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
) -> None:
    """Check a landed snapshot against the data contracts; gate downstream (flow `validate`)."""

    def step() -> Any:
        from flows.validate import validate as validate_flow

        return validate_flow(snapshot=snapshot, threshold=threshold)

    print_summary("validated", run_step("validate", step, quiet=as_json), as_json)


@app.command("features")
def features(
    snapshot: str | None = typer.Option(
        None, help="YYYY-MM-DD; the latest validated one by default"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
) -> None:
    """Compute point-in-time feature tables into the lake (flow `features`)."""

    def step() -> Any:
        from flows.features import features as features_flow

        return features_flow(snapshot=snapshot)

    print_summary("feature rows per view", run_step("features", step, quiet=as_json), as_json)


@app.command("materialize")
def materialize(
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
) -> None:
    """`feast apply` and materialise-incremental into the online store (flow `materialize`)."""

    def step() -> Any:
        from flows.materialize import materialize_flow

        return materialize_flow()

    print_summary(
        "materialised entities per view", run_step("materialize", step, quiet=as_json), as_json
    )


@app.command("train")
def train(
    snapshot: str | None = typer.Option(
        None, help="YYYY-MM-DD; the latest validated one by default"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON"),
) -> None:
    """Train baseline + XGBoost on Feast data; log to MLflow; gate the registry (flow `train`)."""

    def step() -> Any:
        from flows.train import train as train_flow

        return train_flow(snapshot=snapshot)

    summary = run_step("train", step, quiet=as_json)
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        from training.summary import print_summary as print_training

        print_training(summary, console)


@app.command("pipeline")
def pipeline(
    source: str = typer.Option("synthetic", help="synthetic | kaggle | dir:PATH"),
    snapshot: str | None = typer.Option(None, help="YYYY-MM-DD; today (UTC) by default"),
    opportunities: int | None = typer.Option(None, help="Synthetic only: number of opportunities"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
) -> None:
    """land → validate → features → materialize → train/promote (flow `crm-pipeline`)."""
    from ingestion.sources import check_source

    run_step("pipeline", lambda: check_source(source, opportunities))
    summary = run_step(
        "pipeline",
        lambda: _pipeline(source=source, snapshot=snapshot, opportunities=opportunities),
        quiet=as_json,
    )
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        from flows.pipeline import summary_markdown

        console.print(summary_markdown(summary), markup=False, highlight=False)


def _pipeline(**parameters: Any) -> Any:
    from flows.pipeline import pipeline as pipeline_flow

    return pipeline_flow(**parameters)


@app.command("demo")
def demo(
    scorer_port: int = typer.Option(3000, help="Port of the BentoML scorer"),
    explorer_port: int = typer.Option(8501, help="Port of the Streamlit explorer"),
    wait: bool = typer.Option(True, help="Keep serving until Ctrl-C (--no-wait: stop at once)"),
    skip_pipeline: bool = typer.Option(False, help="Serve what the last pipeline produced"),
) -> None:
    """The whole path: the pipeline, then the scorer and the explorer until Ctrl-C."""
    import time

    from crm.demo import explorer_app, running, scorer_app

    settings = load_settings()
    started = time.perf_counter()
    if not skip_pipeline:
        pipeline(source="synthetic", snapshot=None, opportunities=None, as_json=False)
    apps = [scorer_app(scorer_port), explorer_app(explorer_port)]

    def serve() -> None:
        _interrupt_on_signals()
        with running(apps, settings, on_event=lambda msg: console.print(f"  {msg}")):
            console.print(
                f"\n[bold]Ready after {time.perf_counter() - started:.0f} s[/bold] "
                f"(profile {settings.profile}):\n"
                f"  scorer    {apps[0].url}  (OpenAPI docs at {apps[0].url}/docs)\n"
                f"  explorer  {apps[1].url}\n"
            )
            if wait:
                console.print("Ctrl-C stops both.")
                try:
                    while True:
                        time.sleep(1)
                except KeyboardInterrupt:
                    console.print("\nStopping…")

    run_step("demo", serve)


@app.command("deploy")
def deploy() -> None:
    """Register prefect.yaml's deployments (and the process work pool) with the Prefect server."""
    from crm.deploy import DeployError
    from crm.deploy import deploy as deploy_all

    try:
        output = deploy_all(load_settings())
    except DeployError as exc:
        errors.print(f"[red]deploy failed:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    console.print(output, markup=False, highlight=False)


@app.command("worker")
def worker() -> None:
    """Start a Prefect process worker for the deployments (Ctrl-C stops it)."""
    import os

    from crm.deploy import DeployError, prefect_env, worker_command

    try:
        env = prefect_env(load_settings())
    except DeployError as exc:
        errors.print(f"[red]worker:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    command = worker_command()
    os.execve(command[0], command, env)


def _interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM both stop the demo cleanly, even when the shell that started us
    ignores SIGINT (as non-interactive shells do for background jobs)."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


@app.command("env")
def env(profile: Profile = typer.Option(None, help="Defaults to CRM_PROFILE.")) -> None:
    """Print `export` lines so `feast`, `mlflow` and `prefect` CLIs use the active profile."""
    settings = Settings(profile=profile) if profile else load_settings()
    if settings.uses_s3:
        from infra.duck import persist_s3_setup

        persist_s3_setup(settings)  # so DuckDB inside the `feast` CLI can read the S3 lake
    for name, value in settings.env_exports().items():
        print(f"export {name}={shlex.quote(value)}")


@bench_app.command("serving")
def bench_serving(
    sequential: int = typer.Option(1_000, help="Sequential requests per target"),
    requests: int = typer.Option(5_000, help="Requests per concurrency level"),
    concurrency: list[int] = typer.Option([16, 64], help="Concurrency levels (repeatable)"),
    only: list[str] = typer.Option([], help="Targets: service, mlflow, empty (repeatable)"),
) -> None:
    """The scorer against `mlflow models serve` and an empty BentoML endpoint, same run."""
    from bench.serving import main as bench_main

    argv = ["--sequential", str(sequential), "--requests", str(requests), "--concurrency"]
    argv += [str(level) for level in concurrency]
    if only:
        argv += ["--only", *only]
    raise typer.Exit(run_step("bench serving", lambda: bench_main(argv)))


if __name__ == "__main__":  # pragma: no cover
    app()

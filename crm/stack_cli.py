"""`crm stack ...`: the local stack without Docker (PostgreSQL, S3, MLflow, Prefect)."""

from __future__ import annotations

import typer
from rich.table import Table

from crm.console import console, fail, load_settings
from infra.settings import Profile, Settings

stack_app = typer.Typer(help="The local stack without Docker (PostgreSQL, S3, MLflow, Prefect).")


def stack_settings() -> Settings:
    """The stack's own settings: the active profile's, with stack defaults when it is `local`."""
    settings = load_settings()
    if settings.profile is Profile.LOCAL:
        return load_settings(profile=Profile.STACK)
    return settings


@stack_app.command("up")
def stack_up() -> None:
    """Start (or confirm) PostgreSQL, S3, MLflow and Prefect; idempotent."""
    from infra.duck import DuckDBSetupError, persist_s3_setup
    from infra.stack import Stack, StackError

    settings = stack_settings()
    stack = Stack(settings)
    try:
        stack.up(on_event=lambda msg: console.print(f"  {msg}"))
        # The `feast` CLI's DuckDB needs path-style URLs for SeaweedFS (stack profile only;
        # the endpoint and keys come from `crm env`'s exports, see infra.duck).
        persist_s3_setup(settings)
    except (StackError, DuckDBSetupError) as exc:
        fail("stack up", exc)
    _print_status(stack)


@stack_app.command("down")
def stack_down() -> None:
    """Stop what `crm stack up` started (PostgreSQL, a system service, keeps running)."""
    from infra.stack import Stack, StackError

    try:
        stopped = Stack(stack_settings()).down(on_event=lambda msg: console.print(f"  {msg}"))
    except StackError as exc:
        fail("stack down", exc)
    if not stopped:
        console.print("Nothing to stop: no service started by `crm stack up` is running.")


@stack_app.command("status")
def stack_status() -> None:
    """A table of service, URL and health; exit 1 if any service is unhealthy."""
    from infra.stack import Stack

    if not _print_status(Stack(stack_settings())):
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

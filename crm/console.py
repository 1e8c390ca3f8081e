"""What every `crm` command shares: the settings, the consoles, and how a step reports.

A `CRMError` ends a command with its one-line message on stderr (exit 1); invalid settings end
it with the variables to fix (exit 2). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from infra.errors import CRMError
from infra.settings import Settings, settings_problems

console = Console()
# Errors go to stderr, one line each however long: they are read, and grepped.
errors = Console(stderr=True, soft_wrap=True)


def fail(what: str, exc: BaseException, code: int = 1) -> NoReturn:
    """Print `<what> failed: <message>` on stderr and exit with `code`."""
    errors.print(f"[red]{escape(what)} failed:[/red] {escape(str(exc))}")
    raise typer.Exit(code) from exc


def load_settings(**overrides: Any) -> Settings:
    """Settings for the active profile, or a clean exit naming what to fix."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        errors.print(f"[red]Invalid settings:[/red] {escape(settings_problems(exc))}")
        raise typer.Exit(2) from exc


def run_step(name: str, step: Callable[[], Any], *, quiet: bool = False) -> Any:
    """Run a step in a prepared process; a `CRMError` becomes one line, no traceback.

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
        fail(name, exc)


def run_flow(name: str, flow: str, *, as_json: bool, **parameters: Any) -> Any:
    """Run the Prefect flow `module:function` with `parameters`; its summary."""
    module, function = flow.split(":")

    def call() -> Any:
        return getattr(importlib.import_module(module), function)(**parameters)

    return run_step(name, call, quiet=as_json)


def print_json(summary: Any) -> None:
    print(json.dumps(summary, indent=2, default=str))


def print_summary(title: str, summary: Any, as_json: bool = False) -> None:
    """A step's summary: JSON, or a two-column table."""
    if as_json:
        print_json(summary)
        return
    table = Table(title=title, show_header=False)
    for key, value in (summary or {}).items():
        shown = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
        table.add_row(str(key), shown)
    console.print(table)

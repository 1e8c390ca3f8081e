"""Fixtures every tier shares, and the tier markers.

A test's tier is its folder, applied here as a marker (`pytest -m unit` etc.):

- unit:        pure functions, fast, no services and no pipeline run (the tier under 60 s)
- pipeline:    the embedded pipeline in this process or the `crm` CLI: local profile, Prefect's
               test harness, Feast on SQLite, MLflow on SQLite; no servers
- model:       model quality and behaviour on synthetic data with a known true probability
- integration: real services: the test stack (`crm stack up` on its own ports and databases)
- e2e:         the whole path as a user runs it: a fresh clone, the explorer in a browser

Helpers live in `tests/support/` and are imported from there, never from a conftest or a test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import infra.feast_import  # noqa: F401  # before any test module imports Feast
from infra.settings import Settings
from tests.support.cli import crm
from tests.support.stack import (
    TEST_STACK_ENV,
    assert_ports_closed,
    reset_test_stack,
    settings_from,
)

TIERS = ("unit", "pipeline", "model", "integration", "e2e")
HERE = Path(__file__).parent


# Under pytest-xdist (`make test` runs two workers): the integration tier is one unit of work, so
# one worker starts the test stack once and runs every test that needs it, while the other
# worker takes the rest module by module (a module's fixtures are built once). That unit and the
# end-to-end modules are handed out first: they are the long ones.
STACK_SCOPE = "tests/integration"
_XDIST_ORDER = ("integration", "e2e", "pipeline", "model", "unit")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its folder's tier; a test outside the tiers is an error."""
    for item in items:
        tier = item.path.relative_to(HERE).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid} is not under a tier folder {TIERS}")
        item.add_marker(getattr(pytest.mark, tier))
    if hasattr(config, "workerinput"):  # an xdist worker: this order is the schedule's order
        items.sort(key=lambda item: _XDIST_ORDER.index(item.path.relative_to(HERE).parts[0]))


@pytest.hookimpl(optionalhook=True)  # also runs with `-p no:xdist`
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Whole modules per worker, the integration tier as one unit, in the workers' order.

    (xdist's own `loadgroup` cannot be used: it renames items through an attribute pytest 9 no
    longer reads.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class TierScheduling(LoadScopeScheduling):
        def __init__(self, config: pytest.Config, log: Any) -> None:
            super().__init__(config, log)
            config.option.loadscopereorder = False  # keep the long units first

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return STACK_SCOPE if module.startswith(f"{STACK_SCOPE}/") else module

    return TierScheduling(config, log)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """Tests that prepare a process (export a profile's env) must not leak it into the next."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for every flow test of the session (each start costs ~10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    """An isolated embedded profile under a temporary folder."""
    return Settings(profile="local", home=tmp_path / ".crm", _env_file=None)


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    """A running test stack for the whole session; its logs are printed if `up` fails."""
    reset_test_stack()
    result = crm("stack", "up", env=TEST_STACK_ENV)
    if result.returncode != 0:
        logs = crm("stack", "logs", "-n", "60", env=TEST_STACK_ENV)
        crm("stack", "down", env=TEST_STACK_ENV)  # what did start must not outlive the session
        pytest.fail(f"crm stack up failed:\n{result.stdout}\n{result.stderr}\n{logs.stdout}")
    yield dict(TEST_STACK_ENV)
    down = crm("stack", "down", env=TEST_STACK_ENV)
    assert down.returncode == 0, down.stdout + down.stderr
    assert_ports_closed(settings_from(TEST_STACK_ENV))


@pytest.fixture(scope="session")
def stack_settings(stack_env: dict[str, str]) -> Settings:
    return settings_from(stack_env)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On an integration failure, attach the stack's service logs to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "stack_env" in getattr(item, "fixturenames", ()):
        logs = crm("stack", "logs", "-n", "30", env=TEST_STACK_ENV)
        report.sections.append(("stack logs", logs.stdout))

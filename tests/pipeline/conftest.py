"""Fixtures of the pipeline tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.settings import Settings
from tests.support.profiles import local_profile_env


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """An embedded profile of the module's own, exported to this process while it runs."""
    with local_profile_env(tmp_path_factory.mktemp("crm") / ".crm") as settings:
        yield settings

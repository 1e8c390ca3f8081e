"""End-to-end fixtures: a local profile run through the real pipeline, and the real processes
(the BentoML scorer, the Streamlit explorer, headless Chromium) started against it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.settings import Settings
from tests.support.profiles import local_profile_env, prepare_local_profile
from tests.support.servers import CHROMIUM, free_port, running, wait_http


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("explorer-e2e")


@pytest.fixture(scope="session")
def e2e_profile(e2e_dir: Path) -> Settings:
    """A local profile with two validated snapshots, features online and two trained models
    (the environment is restored afterwards: the services get theirs explicitly)."""
    with local_profile_env(e2e_dir / ".crm") as settings:
        prepare_local_profile(settings, opportunities=3000, trainings=2)
    return settings


@pytest.fixture(scope="session")
def profile_env(e2e_profile: Settings) -> dict[str, str]:
    """The environment a user's shell would have for this profile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    return env | {"CRM_PROFILE": "local", "CRM_HOME": str(e2e_profile.home)}


@pytest.fixture(scope="session")
def scorer_url(profile_env: dict[str, str], e2e_dir: Path) -> Iterator[str]:
    """`bentoml serve serving.service:Scorer` on a free port, ready (champion + store loaded)."""
    port = free_port()
    bentoml = str(Path(sys.executable).parent / "bentoml")
    log = e2e_dir / "scorer.log"
    args = [bentoml, "serve", "serving.service:Scorer", "--port", str(port), "--host", "127.0.0.1"]
    with running(args, profile_env, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/readyz", 240, process, log)
        yield url


@pytest.fixture(scope="session")
def explorer_url(profile_env: dict[str, str], scorer_url: str, e2e_dir: Path) -> Iterator[str]:
    """`streamlit run serving/explorer/app.py` headless on a free port, against the scorer."""
    port = free_port()
    log = e2e_dir / "explorer.log"
    args = [
        str(Path(sys.executable).parent / "streamlit"),
        "run",
        "serving/explorer/app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    env = profile_env | {"CRM_SCORER_URL": scorer_url}
    with running(args, env, log) as process:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_stcore/health", 120, process, log)
        yield url


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            "Headless Chromium is missing: install the Debian packages with "
            "`apt-get install -y chromium`."
        )
    return CHROMIUM

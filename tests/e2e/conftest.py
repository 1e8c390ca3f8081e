"""End-to-end fixtures: a local profile run through the real pipeline, and the real processes
(the BentoML scorer, the Streamlit explorer, headless Chromium) started against it.

`prepare_local_profile` is the pipeline's own plain functions, in order (land -> validate ->
features -> feast apply + materialise -> train); the explorer's unit tests reuse it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from infra.processes import WaitTimeout, wait_until
from infra.settings import Settings
from ingestion.tables import SALES_PIPELINE
from tests.conftest import local_profile_env

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ("2017-09-30", "2017-12-31")  # an earlier one first: the quality history has 2 points
BROKEN_ROWS = 3  # deals of the first snapshot with an unknown stage
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_unknown_stage(pipeline: pa.Table, rows: int) -> pa.Table:
    """The first `rows` deals get a stage the contract refuses (they go to quarantine)."""
    stages = pipeline.column("deal_stage").to_pylist()
    stages[:rows] = ["Negotiating"] * rows
    position = pipeline.column_names.index("deal_stage")
    return pipeline.set_column(position, "deal_stage", pa.array(stages, type=pa.string()))


def prepare_local_profile(
    settings: Settings, opportunities: int = 1500, trainings: int = 1, seed: int = 7
) -> dict[str, object]:
    """Run the pipeline's plain functions into `settings.home` (call inside local_profile_env)."""
    from feature_tables.build import build_feature_tables
    from feature_tables.store import apply, feature_store, materialize
    from infra.lake import Lake
    from ingestion.landing import land
    from ingestion.synthetic import generate
    from training.config import TrainingConfig
    from training.run import train
    from validation.run import validate_snapshot

    lake = Lake.from_settings(settings)
    scores = {}
    for i, snapshot in enumerate(SNAPSHOTS):
        source = generate(opportunities, seed=seed + i)
        if i == 0:  # a few unusable rows, so the earlier snapshot has a quarantine to show
            source.tables[SALES_PIPELINE] = with_unknown_stage(
                source.tables[SALES_PIPELINE], BROKEN_ROWS
            )
        land(lake, source, snapshot, code_version="explorer-e2e")
        scores[snapshot] = validate_snapshot(
            lake, snapshot, threshold=settings.quality_threshold
        ).score.value
    rows = build_feature_tables(lake, SNAPSHOTS[-1])
    store = feature_store(settings)
    apply(store, settings)
    materialize(store)
    reports = [
        train(settings, TrainingConfig(search_size=2, seed=seed + i)) for i in range(trainings)
    ]
    return {"validation_scores": scores, "feature_rows": rows, "trainings": reports}


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait for a 200 from `url`; fail with the process's log if it dies or never answers."""

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(
                f"{process.args} exited with {process.returncode}:\n{log.read_text()[-4000:]}"
            )
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, timeout_s=timeout, interval_s=1, what=f"{url} to answer 200")
    except WaitTimeout:
        pytest.fail(f"{url} did not answer 200 within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess in its own process group, stopped (then killed) at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("explorer-e2e")


@pytest.fixture(scope="session")
def e2e_profile(e2e_dir: Path) -> Settings:
    """A local profile with two validated snapshots, features online and two trained models
    (the environment is restored afterwards: the services get theirs explicitly)."""
    with local_profile_env(e2e_dir / ".crm") as settings:
        prepare_local_profile(settings, opportunities=2000, trainings=2)
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
            "`apt-get install -y chromium chromium-driver`."
        )
    return CHROMIUM

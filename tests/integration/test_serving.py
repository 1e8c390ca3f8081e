"""The scoring service as a real `bentoml serve` process on the stack profile.

One service scores through a small TCP proxy in front of the stack's PostgreSQL (so the online
store can be cut and restored without touching the shared server; bench/reliability/tcp_proxy.py)
and wants a bearer token; a second one is started with a model name that has no champion. The
fault scenarios (stall, poisoned requests, fuzzing) are in test_serving_faults.py. Expected
values come from Feast's own `get_online_features` in this process, scored with the registered
champion directly.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest
import xgboost as xgb

from bench.reliability.tcp_proxy import TcpProxy
from infra.processes import WaitTimeout, start_group, stop_group, wait_until
from infra.settings import Settings
from serving.client import InvalidRequest, NotFound, ScoringClient, ServiceUnavailable, Unauthorized
from tests.support.cli import ROOT
from tests.support.feast_reference import online_service_frame
from tests.support.servers import free_port

TOKEN = "test-token-7c1d"


class Service:
    """`bentoml serve serving.service:Scorer` in its own process group, logs to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, cwd: Path = ROOT) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        bentoml = Path(sys.executable).parent / "bentoml"
        command = [str(bentoml), "serve", "serving.service:Scorer", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--working-dir", str(ROOT)]
        # cwd: where the settings' `.env` is read from; the token only ever comes from there
        # or from `env`, never from this test process.
        inherited = {k: v for k, v in os.environ.items() if k != "CRM_API_TOKEN"}
        log_path.unlink(missing_ok=True)
        self.process = start_group(command, log_path, cwd=cwd, env={**inherited, **env})

    def logs(self, tail: int = 80) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-tail:])

    def wait(self, path: str, timeout: float = 240) -> httpx.Response:
        last: httpx.Response | None = None

        def answered() -> httpx.Response | None:
            nonlocal last
            if self.process.poll() is not None:
                pytest.fail(f"bentoml serve exited ({self.process.returncode}):\n{self.logs()}")
            try:
                last = httpx.get(self.url + path, timeout=2)
            except httpx.HTTPError:
                return None
            return last if last.status_code == 200 else None

        try:
            return wait_until(answered, timeout_s=timeout, interval_s=0.5, what=self.url + path)
        except WaitTimeout:
            pytest.fail(f"{self.url}{path} not 200 after {timeout} s ({last}):\n{self.logs()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_group(self.process.pid, grace_s=20)  # its worker too (own session)


@pytest.fixture(scope="module")
def pg_proxy(stack_pipeline: Settings) -> Iterator[TcpProxy]:
    proxy = TcpProxy(stack_pipeline.pg_port)
    proxy.start()
    yield proxy
    proxy.stop()


def _started(
    request: pytest.FixtureRequest, env: dict[str, str], name: str, tmp: Path, cwd: Path = ROOT
) -> Service:
    service = Service(env, tmp / f"{name}.log", cwd)
    request.addfinalizer(service.stop)
    return service


@pytest.fixture(scope="module")
def service(
    request: pytest.FixtureRequest,
    stack_env: dict[str, str],
    pg_proxy: TcpProxy,
    tmp_path_factory: pytest.TempPathFactory,
) -> Service:
    """The scorer behind the proxy; its token is only in a `.env` file, as .env.example says."""
    env = {**stack_env, "CRM_PG_PORT": str(pg_proxy.port), "CRM_SERVING_RETRY_SECONDS": "2"}
    folder = tmp_path_factory.mktemp("serving")
    (folder / ".env").write_text(f"CRM_API_TOKEN={TOKEN}\n")
    svc = _started(request, env, "scorer", folder, cwd=folder)
    svc.wait("/readyz")
    return svc


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[ScoringClient]:
    with ScoringClient(service.url, token=TOKEN, timeout=30) as c:
        yield c


@pytest.fixture(autouse=True)
def _dump_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed test prints the logs of the services it used (pytest shows captured output)."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        for name in ("service", "no_champion"):
            if name in request.fixturenames:
                svc: Service = request.getfixturevalue(name)
                print(f"--- {name} log ({svc.log_path}) ---\n{svc.logs(200)}")


@pytest.fixture(scope="module")
def lake_opportunities(stack_pipeline: Settings) -> pd.DataFrame:
    from feature_tables.published import read_feature_table
    from infra.lake import Lake

    table = read_feature_table(Lake.from_settings(stack_pipeline), "opportunity")
    return table.to_pandas().sort_values("event_timestamp")


@pytest.fixture(scope="module")
def deal_ids(lake_opportunities: pd.DataFrame) -> dict[str, list[str]]:
    stage = lake_opportunities.groupby("opportunity_id")["deal_stage"].last()
    closed = stage[stage.isin(["Won", "Lost"])]
    return {"open": sorted(stage.index.difference(closed.index)), "closed": sorted(closed.index)}


def _reference(settings: Settings, ids: list[str], request_ts: list[datetime]) -> np.ndarray:
    """Feast's get_online_features for the same deals, scored by the champion in this process."""
    from feature_tables.store import feature_store
    from infra.runtime import prepare_process
    from training.registry import load_model

    prepare_process(settings)
    frame = online_service_frame(feature_store(settings), ids, request_ts)
    model = load_model(settings)
    encoded = model.spec.encode(frame)[model.booster.feature_names]
    types = ["c" if c in model.spec.categorical else "q" for c in encoded.columns]
    raw = model.booster.predict(xgb.DMatrix(encoded, feature_types=types, enable_categorical=True))
    return model.calibrator.apply(raw)


def test_batch_and_single_scores_equal_offline_scoring(
    client: ScoringClient, stack_pipeline: Settings, deal_ids: dict[str, list[str]]
) -> None:
    ids = deal_ids["open"][:80]
    scores = client.score_batch(ids)
    assert [s.opportunity_id for s in scores] == ids
    explicit = datetime(2017, 11, 15, 8, tzinfo=UTC)
    single = client.score(ids[0], as_of=explicit)
    expected = _reference(
        stack_pipeline,
        [*ids, ids[0]],
        [*(s.as_of for s in scores), explicit],  # type: ignore[misc]
    )
    got = np.array([s.win_probability for s in [*scores, single]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert len({round(p, 4) for p in got}) > 10  # real, varied scores
    assert single.as_of == explicit


def test_a_score_has_value_contributions_model_and_freshness(
    client: ScoringClient,
    stack_pipeline: Settings,
    deal_ids: dict[str, list[str]],
    lake_opportunities: pd.DataFrame,
) -> None:
    from training.registry import alias_version

    score = client.score(deal_ids["open"][0], top_k=4)
    assert score.model_name == stack_pipeline.model_name
    assert score.model_version == alias_version(stack_pipeline, "champion")
    assert score.profile == "stack"
    assert score.list_price and score.expected_value == pytest.approx(
        score.win_probability * score.list_price
    )
    assert len(score.contributions) == 4
    newest = lake_opportunities["event_timestamp"].max()
    stats = score.feature_timestamps["sales_agent_daily_stats"]
    assert stats is not None and stats.date() == newest.date()
    assert score.as_of is not None and score.as_of > stats


def test_unknown_and_closed_opportunities_are_404(
    client: ScoringClient, deal_ids: dict[str, list[str]]
) -> None:
    with pytest.raises(NotFound, match="not in the online store"):
        client.score("NO-SUCH-OPPORTUNITY")
    with pytest.raises(NotFound, match="already closed"):
        client.score(deal_ids["closed"][0])
    with pytest.raises(NotFound, match="1 of 2 ids"):
        client.score_batch([deal_ids["open"][0], deal_ids["closed"][0]])


def test_invalid_bodies_are_422_naming_the_field(service: Service) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    cases = [
        ("/score", {"opportunity_id": ""}, "opportunity_id"),
        ("/score", {"id": "X"}, "opportunity_id"),
        ("/score", {"opportunity_id": "X", "as_of": "not a date"}, "as_of"),
        ("/score_batch", {"opportunity_ids": [f"X{i}" for i in range(1001)]}, "opportunity_ids"),
        ("/score_features", {"features": {"no_such_feature": 1}}, "no_such_feature"),
    ]
    for path, body, field in cases:
        response = httpx.post(service.url + path, json=body, headers=auth, timeout=30)
        assert response.status_code == 422, (path, body, response.text)
        assert field in response.json()["error"], response.text
    with ScoringClient(service.url, token=TOKEN) as client, pytest.raises(InvalidRequest) as err:
        client.score_features({"sales_agent_daily_stats__win_rate_all": "high"})
    assert err.value.fields == ["sales_agent_daily_stats__win_rate_all"]


def test_every_error_is_json_with_a_request_id(service: Service) -> None:
    """Bad input of every kind: a 4xx JSON answer naming what is wrong, never a 500 or text."""
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    name = "sales_agent_daily_stats__win_rate_all"
    cases = [
        ("POST", "/score", b'{"opportunity_id": "A", "as_of": "0001-01-01T00:00:00+14:00"}', 422),
        ("POST", "/score_features", b'{"features": {"%s": 1e39}}' % name.encode(), 422),
        ("POST", "/score_features", b'{"features": {"%s": Infinity}}' % name.encode(), 422),
        (
            "POST",
            "/score_features",
            b'{"features": {%s}}' % b",".join(b'"f%d": 1' % i for i in range(50_000)),
            413,
        ),
        ("POST", "/score", b"{not json", 422),
        ("GET", "/no-such-route", b"", 404),
        ("DELETE", "/livez", b"", 405),
    ]
    with httpx.Client(base_url=service.url, timeout=30) as http:
        for method, path, body, status in cases:
            response = http.request(method, path, content=body, headers=auth)
            assert response.status_code == status, (path, body[:80], response.text[:300])
            assert response.headers["content-type"] == "application/json"
            assert response.json()["request_id"] == response.headers["x-request-id"]
        weird = {
            "Authorization": "Bearer t\u00e9st\u00ff".encode(),
            "Content-Type": "application/json",
        }
        response = http.post("/score", content=b'{"opportunity_id": "A"}', headers=weird)
        assert response.status_code == 401 and response.json()["error"].startswith(
            "Missing or wrong"
        )
        echoed = http.get("/model_features", headers={**auth, "X-Request-ID": "trace-7"})
        assert echoed.status_code == 200 and echoed.headers["x-request-id"] == "trace-7"


def test_what_if_scores_explicit_features(client: ScoringClient) -> None:
    described = client.model_features()
    base = {"product_profile__sales_price": 5_000.0}
    low = client.score_features({**base, "sales_agent_daily_stats__win_rate_all": 0.1})
    high = client.score_features({**base, "sales_agent_daily_stats__win_rate_all": 0.9})
    assert "sales_agent_daily_stats__win_rate_all" in described.numeric
    assert high.win_probability >= low.win_probability  # monotone constraint on win rates
    assert high.expected_value == pytest.approx(high.win_probability * 5_000)


def test_token_is_required_on_scoring_routes(service: Service, deal_ids: dict) -> None:
    """The token is only in the service's `.env` (not its environment): it is still enforced."""
    assert "CRM_API_TOKEN" not in psutil.Process(service.process.pid).environ()
    for token in (None, "wrong-token"):
        with ScoringClient(service.url, token=token) as anonymous:
            with pytest.raises(Unauthorized):
                anonymous.score(deal_ids["open"][0])
            with pytest.raises(Unauthorized):
                anonymous.score_batch(deal_ids["open"][:2])
            assert anonymous.ready() == (True, "ready")  # probes stay open
    assert httpx.get(service.url + "/healthz").status_code == 200


def test_metrics_and_openapi_are_served(service: Service, client: ScoringClient) -> None:
    metrics = httpx.get(service.url + "/metrics", timeout=10)
    assert metrics.status_code == 200 and "bentoml_service_request" in metrics.text
    paths = httpx.get(service.url + "/docs.json", timeout=10).json()["paths"]
    assert {"/score", "/score_batch", "/score_features", "/readyz"} <= set(paths)


def test_online_store_outage_is_503_then_recovers_without_restart(
    client: ScoringClient, pg_proxy: TcpProxy, deal_ids: dict[str, list[str]], service: Service
) -> None:
    opportunity = deal_ids["open"][1]
    before = client.score(opportunity).win_probability
    pg_proxy.stop()
    try:
        started = time.perf_counter()
        with pytest.raises(ServiceUnavailable, match="Online store unreachable") as err:
            client.score(opportunity)
        assert err.value.status == 503 and err.value.request_id
        with pytest.raises(ServiceUnavailable, match="Online store unreachable"):
            client.score(opportunity)  # still down: still a clear 503, not a hang or a 500
        assert time.perf_counter() - started < 2
        assert "127.0.0.1" not in str(err.value)  # the driver's message is in the log only
    finally:
        pg_proxy.start()
    back = time.perf_counter()

    def scored() -> float | None:
        try:
            return client.score(opportunity).win_probability
        except ServiceUnavailable:
            return None

    assert wait_until(scored, timeout_s=5, interval_s=0.1, what="scores again") == before
    assert time.perf_counter() - back < 5
    assert service.process.poll() is None  # same process
    assert "Online store lost" in service.logs(400) and "Online store back" in service.logs(400)


@pytest.fixture(scope="module")
def no_champion(
    request: pytest.FixtureRequest,
    stack_pipeline: Settings,
    stack_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Service:
    env = {**stack_env, "CRM_MODEL_NAME": "crm-model-without-champion"}
    svc = _started(request, env, "no-champion", tmp_path_factory.mktemp("serving-nochamp"))
    svc.wait("/healthz")
    return svc


def test_without_a_champion_the_service_runs_but_is_not_ready(no_champion: Service) -> None:
    """Not ready, publicly only "not ready": why (which model, what to run) is in the log."""
    with ScoringClient(no_champion.url) as client:

        def attempted() -> bool:  # the first load attempt may still be running
            return "Not ready (retrying" in no_champion.logs(400)

        wait_until(attempted, timeout_s=180, interval_s=1, what="the first champion load to end")
        assert client.ready() == (False, "not ready")
        response = httpx.get(no_champion.url + "/readyz", timeout=10)
        assert response.status_code == 503
        assert response.json() == {
            "error": "not ready",
            "request_id": response.headers["x-request-id"],
        }
        with pytest.raises(ServiceUnavailable, match="Not ready") as err:
            client.score("ANY")
        assert "crm-model-without-champion" not in str(err.value)
    log = no_champion.logs(400)
    assert "crm-model-without-champion@champion" in log and "crm train" in log
    time.sleep(3)
    assert no_champion.process.poll() is None  # keeps running (and retrying)
    assert httpx.get(no_champion.url + "/healthz").status_code == 200

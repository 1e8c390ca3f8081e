"""The registry fails closed: only "does not exist" means "no champion"; any other failure stops
the gate with an error that says what happened, and nothing is promoted."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    PERMISSION_DENIED,
    RESOURCE_DOES_NOT_EXIST,
    TEMPORARILY_UNAVAILABLE,
)

from flows.retries import is_transient
from infra.settings import Settings
from training import registry
from training.errors import RegistryError, RegistryUnavailable
from training.gate import GatePolicy, SkillEvidence
from training.registry import CHAMPION, alias_version, load_model, promote
from training.skill import Interval


class FakeClient:
    """The few MlflowClient calls the registry makes, failing where told to."""

    def __init__(
        self,
        *,
        aliases: dict[str, str] | None = None,
        read_error: BaseException | None = None,
        write_error: BaseException | None = None,
    ) -> None:
        self.aliases = aliases or {}
        self.read_error, self.write_error = read_error, write_error
        self.writes: list[tuple[Any, ...]] = []

    def get_registered_model(self, name: str) -> SimpleNamespace:
        if self.read_error is not None:
            raise self.read_error
        return SimpleNamespace(name=name, aliases=self.aliases)

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._write(("tag", version, key, value))

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._write(("alias", alias, version))

    def _write(self, call: tuple[Any, ...]) -> None:
        if self.write_error is not None:
            raise self.write_error
        self.writes.append(call)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path, mlflow_tracking_uri="http://127.0.0.1:5000", _env_file=None)


def use(monkeypatch: pytest.MonkeyPatch, client: FakeClient) -> FakeClient:
    monkeypatch.setattr(registry, "_client", lambda settings: client)
    return client


def test_a_missing_model_or_alias_is_no_champion(monkeypatch, settings) -> None:
    use(monkeypatch, FakeClient(read_error=MlflowException("nope", RESOURCE_DOES_NOT_EXIST)))
    assert alias_version(settings, CHAMPION) is None
    use(monkeypatch, FakeClient(aliases={"challenger": "1"}))
    assert alias_version(settings, CHAMPION) is None
    use(monkeypatch, FakeClient(aliases={"champion": "3"}))
    assert alias_version(settings, CHAMPION) == "3"


@pytest.mark.parametrize(
    "error",
    [
        MlflowException("API request failed: Max retries exceeded", INTERNAL_ERROR),
        MlflowException("try later", TEMPORARILY_UNAVAILABLE),
        ConnectionError("Connection refused"),
    ],
)
def test_an_outage_is_a_registry_unavailable_error_not_no_champion(
    monkeypatch, settings, error: BaseException
) -> None:
    use(monkeypatch, FakeClient(read_error=error))
    with pytest.raises(RegistryUnavailable) as info:
        alias_version(settings, CHAMPION)
    message = str(info.value)
    assert "http://127.0.0.1:5000 could not read crm-win-probability@champion" in message
    assert "nothing was promoted" in message and "crm stack status" in message
    # MLflow's HTTP client already retried it (the one layer): the task does not again.
    assert not is_transient(info.value)


def test_a_refusal_is_a_registry_error_that_is_not_retried(monkeypatch, settings) -> None:
    use(monkeypatch, FakeClient(read_error=MlflowException("no access", PERMISSION_DENIED)))
    with pytest.raises(RegistryError) as info:
        alias_version(settings, CHAMPION)
    assert not isinstance(info.value, RegistryUnavailable) and not is_transient(info.value)
    assert "PERMISSION_DENIED: no access" in str(info.value)


def test_no_champion_to_load_says_why(monkeypatch, settings) -> None:
    use(monkeypatch, FakeClient(aliases={"challenger": "1"}))
    with pytest.raises(RegistryError, match="No model crm-win-probability@champion") as info:
        load_model(settings, CHAMPION)
    assert "nothing was promoted yet" in str(info.value) and "crm train" in str(info.value)


SKILLED = SkillEvidence(
    base_rate=0.63,
    brier=0.205,
    base_rate_brier=0.234,
    log_loss=0.596,
    base_rate_log_loss=0.661,
    brier_skill=Interval(0.125, 0.09, 0.16),
    log_loss_skill=Interval(0.098, 0.07, 0.126),
)
NO_SKILL = SkillEvidence(
    base_rate=0.63,
    brier=0.2343,
    base_rate_brier=0.2315,
    log_loss=0.6617,
    base_rate_log_loss=0.6558,
    brier_skill=Interval(-0.012, -0.023, 0.0005),
    log_loss_skill=Interval(-0.009, -0.018, 0.0006),
)


def gate(settings: Settings, evidence: SkillEvidence, version: str = "1"):
    y = np.array([1, 0, 1])
    return promote(
        settings,
        version,
        candidate="xgboost",
        evidence=evidence,
        candidate_p=np.array([0.7, 0.4, 0.6]),
        test_frame=pd.DataFrame({"x": [1, 2, 3]}),
        y=y,
        groups=np.array(["a", "b", "c"]),
        policy=GatePolicy(),
    )


def test_a_registry_that_cannot_be_read_promotes_nothing(monkeypatch, settings) -> None:
    client = use(monkeypatch, FakeClient(read_error=MlflowException("boom", INTERNAL_ERROR)))
    with pytest.raises(RegistryUnavailable, match="nothing was promoted"):
        gate(settings, SKILLED)
    assert client.writes == []  # before the fix: "no champion yet" and any model promoted


def test_a_registry_that_cannot_be_written_promotes_nothing(monkeypatch, settings) -> None:
    client = use(monkeypatch, FakeClient(write_error=MlflowException("down", INTERNAL_ERROR)))
    with pytest.raises(RegistryUnavailable, match="could not record the decision on v1"):
        gate(settings, SKILLED)
    assert client.writes == []


def test_without_skill_the_first_model_is_registered_but_not_champion(monkeypatch, settings):
    client = use(monkeypatch, FakeClient(aliases={"challenger": "1"}))
    decision = gate(settings, NO_SKILL)
    assert not decision.promoted and decision.outcome == "no_skill"
    assert decision.reason.startswith("no skill: Brier 0.2343 vs base rate 0.2315")
    assert ("alias", CHAMPION, "1") not in client.writes
    assert ("tag", "1", "promoted", "False") in client.writes
    assert decision.skill is not None and decision.skill["brier_skill"]["high"] == 0.0005

    client = use(monkeypatch, FakeClient(aliases={"challenger": "1"}))
    decision = gate(settings, SKILLED)
    assert decision.promoted and decision.outcome == "first_champion"
    assert client.writes[-1] == ("alias", CHAMPION, "1")  # the alias moves last

"""docker-compose.yml cannot run here (no Docker engine); check it agrees with the settings."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from infra.settings import Settings
from tests.support.cli import ROOT


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def host_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split(":")[0]) for p in service.get("ports", [])}


def test_services_of_the_stack_are_all_there(compose: dict[str, Any]) -> None:
    expected = {
        "minio",
        "create-buckets",
        "postgres",
        "mlflow",
        "prefect-server",
        "prefect-worker",
        "pipeline",
        "scorer",
        "explorer",
    }
    assert expected <= set(compose["services"])


def test_host_ports_match_the_stack_profile(compose: dict[str, Any]) -> None:
    s = Settings(profile="stack", _env_file=None)  # type: ignore[call-arg]
    services = compose["services"]
    assert s.pg_port in host_ports(services["postgres"])
    assert s.mlflow_port in host_ports(services["mlflow"])
    assert s.prefect_port in host_ports(services["prefect-server"])
    s3_port = int(s.s3_endpoint_host.rsplit(":", 1)[1])  # type: ignore[union-attr]
    assert s3_port in host_ports(services["minio"])
    scorer_port = int(s.scorer_url.rsplit(":", 1)[1])
    assert scorer_port in host_ports(services["scorer"])
    assert services["explorer"]["environment"]["CRM_SCORER_URL"].endswith(f":{scorer_port}")


def test_app_images_build_from_the_lockfile_with_one_target_per_role(
    compose: dict[str, Any],
) -> None:
    dockerfile = (ROOT / "infra/docker/app.Dockerfile").read_text()
    assert "uv sync --frozen" in dockerfile
    for name in ("prefect-worker", "pipeline", "scorer", "explorer"):
        build = compose["services"][name]["build"]
        assert build["dockerfile"] == "infra/docker/app.Dockerfile"
        assert f"AS {build['target']}" in dockerfile, f"{name}: no stage {build['target']}"
    assert compose["services"]["pipeline"]["command"].startswith("crm pipeline")


def test_every_variable_is_a_setting(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{(CRM_[A-Z0-9_]+)", text))
    fields = {f"CRM_{name.upper()}" for name in Settings.model_fields}
    assert used, "compose should take its settings from CRM_* variables"
    assert used <= fields, f"not settings: {sorted(used - fields)}"


def test_defaults_agree_with_the_stack_profile() -> None:
    s = Settings(profile="stack", _env_file=None)  # type: ignore[call-arg]
    text = (ROOT / "docker-compose.yml").read_text()
    defaults = dict(re.findall(r"\$\{(CRM_[A-Z0-9_]+):-([^}]*)\}", text))
    for var, default in defaults.items():
        value = getattr(s, var.removeprefix("CRM_").lower())
        value = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        assert ("" if value is None else str(value)) == default, (
            f"{var}: compose default {default!r} != settings {value!r}"
        )


def test_pinned_images_named_volumes_and_healthchecks(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image", "")
        if "build" not in service:
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
    for name in ("minio", "postgres", "mlflow", "prefect-server"):
        assert "healthcheck" in compose["services"][name], name
    assert set(compose["volumes"]) == {"minio-data", "postgres-data"}


def test_env_example_lists_every_compose_variable() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / ".env.example").read_text()
    for var in set(re.findall(r"\$\{(CRM_[A-Z0-9_]+)", text)):
        assert var in example, f"{var} missing from .env.example"

"""docker-compose.yml cannot run here (no Docker engine); check it agrees with the settings.

`render` interpolates the file the way `docker compose` does (`${VAR}`, `${VAR:-default}`,
`${VAR:?message}`, `$$`), so the checks see what a user's `docker compose up` would run.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.settings import STACK_DEFAULTS, Settings
from serving.middleware import Limits
from tests.support.cli import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKER = ROOT / "infra" / "docker"
# What a user's .env must set for `docker compose up` (see .env.example).
ADMIN_ENV = {
    "MINIO_ROOT_USER": "minio-root",
    "MINIO_ROOT_PASSWORD": "root-secret-0123456789",
    "POSTGRES_PASSWORD": "superuser-secret",
}
ADMIN_SECRETS = ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "POSTGRES_PASSWORD")
APP_SERVICES = ("mlflow", "prefect-server", "prefect-worker", "pipeline", "scorer", "explorer")
_VARIABLE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\})")


class ComposeError(ValueError):
    """What `docker compose` would refuse, with its message."""


def render(env: Mapping[str, str], text: str | None = None) -> dict[str, Any]:
    """The compose file as `docker compose config` would see it with `env` (its .env)."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        name, operator, word = match.group(2), match.group(3), match.group(4)
        value = env.get(name, "")
        if operator == ":-" and not value:
            return word
        if operator == ":?" and not value:
            raise ComposeError(f"required variable {name} is missing a value: {word}")
        return value

    rendered: dict[str, Any] = yaml.safe_load(
        _VARIABLE.sub(substitute, text or COMPOSE.read_text())
    )
    return rendered


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return render(ADMIN_ENV)


def published(service: dict[str, Any]) -> list[tuple[str, int]]:
    """(host address, host port) of each published port, which must name its address."""
    out = []
    for port in service.get("ports", []):
        address, host_port, _container = str(port).rsplit(":", 2)
        out.append((address, int(host_port)))
    return out


def host_ports(service: dict[str, Any]) -> set[int]:
    return {port for _, port in published(service)}


def test_services_of_the_stack_are_all_there(compose: dict[str, Any]) -> None:
    expected = {
        "minio",
        "create-buckets",
        "postgres",
        "mlflow",
        "prefect-server",
        "register-deployments",
        "prefect-worker",
        "pipeline",
        "scorer",
        "edge",
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
    assert scorer_port in host_ports(services["edge"])  # callers reach the scorer through it
    assert not host_ports(services["scorer"])
    assert services["explorer"]["environment"]["CRM_SCORER_URL"].endswith(f":{scorer_port}")


def test_every_port_is_published_on_localhost_unless_bind_address_says_otherwise(
    compose: dict[str, Any],
) -> None:
    ports = [p for service in compose["services"].values() for p in published(service)]
    assert {port for _, port in ports} == {8333, 9001, 5432, 5000, 4200, 3000, 8501}
    assert {address for address, _ in ports} == {"127.0.0.1"}
    for service in yaml.safe_load(COMPOSE.read_text())["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), port
    elsewhere = render(ADMIN_ENV | {"BIND_ADDRESS": "192.0.2.10"})
    addresses = {a for s in elsewhere["services"].values() for a, _ in published(s)}
    assert addresses == {"192.0.2.10"}


def test_the_administrators_secrets_have_no_default() -> None:
    for name in ADMIN_SECRETS:
        with pytest.raises(ComposeError, match=f"{name}.*set {name} in .env"):
            render({k: v for k, v in ADMIN_ENV.items() if k != name})


def test_the_app_never_gets_the_minio_root_keys_or_the_superuser(compose: dict[str, Any]) -> None:
    raw = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in APP_SERVICES:
        text = yaml.safe_dump(raw[name]) + yaml.safe_dump(compose["services"][name])
        for secret in ADMIN_SECRETS:
            assert secret not in text, f"{name} gets {secret}"
        for value in ADMIN_ENV.values():
            assert value not in text, f"{name} gets an administrator's secret"
        assert "env_file" not in raw[name], f"{name}: env_file hands over every secret of .env"
    app_keys = compose["services"]["scorer"]["environment"]
    assert (
        app_keys["CRM_S3_ACCESS_KEY_ID"]
        != compose["services"]["minio"]["environment"]["MINIO_ROOT_USER"]
    )


def test_the_app_gets_its_own_minio_user_and_postgres_role() -> None:
    minio_init = (DOCKER / "minio-init.sh").read_text()
    assert "mc admin user add lake" in minio_init and "mc admin policy attach" in minio_init
    assert 'if [ "$app_key" = "$MINIO_ROOT_USER" ]' in minio_init  # refuses the root keys
    postgres_init = (DOCKER / "postgres-init.sh").read_text()
    assert "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" in postgres_init
    assert "OWNER %I', :'db', :'app_user'" in postgres_init


def test_no_secret_is_on_a_command_line(compose: dict[str, Any]) -> None:
    secrets = set(ADMIN_ENV.values()) | {
        STACK_DEFAULTS["s3_secret_access_key"],
        "crm:crm@",  # a DSN with the default password
    }
    for name, service in compose["services"].items():
        argv = yaml.safe_dump([service.get(key) for key in ("command", "entrypoint")])
        for secret in secrets:
            assert secret not in argv, f"{name} has a secret on its command line: {argv}"
        assert "--backend-store-uri" not in argv
    minio_init = (DOCKER / "minio-init.sh").read_text()
    assert "mc alias set" not in minio_init  # takes the keys as arguments
    assert "MC_HOST_lake=" in minio_init and "| mc admin user add lake\n" in minio_init
    assert "\\getenv app_password CRM_PG_PASSWORD" in (DOCKER / "postgres-init.sh").read_text()
    launcher = (DOCKER / "mlflow_server.py").read_text()
    assert 'os.environ["MLFLOW_BACKEND_STORE_URI"]' in launcher


def test_the_mlflow_launcher_url_encodes_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from sqlalchemy.engine import make_url

    spec = importlib.util.spec_from_file_location("mlflow_server", DOCKER / "mlflow_server.py")
    assert spec is not None and spec.loader is not None
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    for name in ("CRM_PG_USER", "CRM_PG_HOST", "CRM_PG_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRM_PG_PASSWORD", "p@ss:w/rd#1")
    monkeypatch.setenv("CRM_PG_DB_MLFLOW", "crm_mlflow")
    url = make_url(launcher.backend_store_uri())
    assert (url.username, url.password, url.host, url.database) == (
        "crm",
        "p@ss:w/rd#1",
        "postgres",
        "crm_mlflow",
    )


def test_app_images_build_from_the_lockfile_with_one_target_per_role(
    compose: dict[str, Any],
) -> None:
    dockerfile = (DOCKER / "app.Dockerfile").read_text()
    assert "uv sync --frozen" in dockerfile
    for name in ("prefect-worker", "pipeline", "scorer", "explorer"):
        build = compose["services"][name]["build"]
        assert build["dockerfile"] == "infra/docker/app.Dockerfile"
        assert f"AS {build['target']}" in dockerfile, f"{name}: no stage {build['target']}"
    assert compose["services"]["pipeline"]["command"].startswith("crm pipeline")


@pytest.mark.parametrize("dockerfile", ["app.Dockerfile", "mlflow.Dockerfile"])
def test_images_run_as_an_unprivileged_user_on_a_pinned_base(dockerfile: str) -> None:
    text = (DOCKER / dockerfile).read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users, f"{dockerfile}: no USER, so it runs as root"
    assert not any(u.split(":")[0] in {"root", "0"} for u in users)
    bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)", text, flags=re.MULTILINE)
    pinned = r"python:3\.11\.\d+-slim-\w+@sha256:[0-9a-f]{64}"
    assert bases and all(re.fullmatch(pinned, base) for base in bases)


def test_the_app_image_is_multi_stage_and_its_roles_build_on_the_unprivileged_base() -> None:
    text = (DOCKER / "app.Dockerfile").read_text()
    parents = {stage: base for base, stage in re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", text, re.M)}
    assert parents["build"] == parents["base"] == "${PYTHON_IMAGE}"
    for role in ("worker", "scorer", "explorer"):
        assert parents[role] == "base", role
    base_stage = text.split("AS base", 1)[1].split("FROM ", 1)[0]
    assert "COPY --from=build /app /app" in base_stage and "USER 10001:10001" in base_stage
    assert "useradd --system --uid 10001" in base_stage


def test_dockerignore_keeps_secrets_state_and_history_out_of_images() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".git", ".env", ".stack*", ".crm*", ".venv", "tests/artifacts"):
        assert required in patterns, required
    assert "bench/results/logs" in patterns
    assert "!.env.example" in patterns  # the example is no secret


ONE_SHOTS = {"create-buckets", "register-deployments", "pipeline"}


def test_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name not in ONE_SHOTS:
            assert "healthcheck" in service, name


def test_long_running_services_restart_within_resource_limits(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in ONE_SHOTS:
            assert service["restart"] == "no", name
            continue
        assert service["restart"] == "unless-stopped", name
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) >= 1 and limits["memory"].endswith("g"), name


def test_deployments_are_registered_inside_the_compose_path(compose: dict[str, Any]) -> None:
    """`crm deploy` runs in the image (the deployments' working directory is the image's code
    path, which the worker shares); the worker starts only once they are registered."""
    services = compose["services"]
    register = services["register-deployments"]
    assert register["command"] == "crm deploy"
    assert register["image"] == services["prefect-worker"]["image"]
    assert register["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    worker_needs = services["prefect-worker"]["depends_on"]["register-deployments"]
    assert worker_needs["condition"] == "service_completed_successfully"
    dockerfile = (ROOT / "infra" / "docker" / "app.Dockerfile").read_text()
    assert "WORKDIR /app" in dockerfile  # PROJECT_ROOT inside the image: crm deploy's directory


def test_every_variable_is_a_setting_or_documented() -> None:
    text = COMPOSE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    crm = {v for v in used if v.startswith("CRM_")}
    fields = {f"CRM_{name.upper()}" for name in Settings.model_fields}
    assert crm, "compose should take its settings from CRM_* variables"
    assert crm <= fields, f"not settings: {sorted(crm - fields)}"
    assert used - crm == {"BIND_ADDRESS", *ADMIN_SECRETS}


def test_defaults_agree_with_the_stack_profile() -> None:
    s = Settings(profile="stack", _env_file=None)  # type: ignore[call-arg]
    texts = [COMPOSE.read_text()] + [
        (DOCKER / name).read_text() for name in ("postgres-init.sh", "minio-init.sh")
    ]
    defaults = {
        var: default
        for text in texts
        for var, default in re.findall(r"\$\{(CRM_[A-Z0-9_]+):-([^}]*)\}", text)
    }
    launcher = (DOCKER / "mlflow_server.py").read_text()
    defaults |= dict(re.findall(r'setting\("(CRM_[A-Z0-9_]+)", "([^"]*)"\)', launcher))
    defaults.pop("CRM_PG_HOST")  # the container's name for the server, not the host's
    for var, default in defaults.items():
        value = getattr(s, var.removeprefix("CRM_").lower())
        value = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        assert ("" if value is None else str(value)) == default, (
            f"{var}: compose default {default!r} != settings {value!r}"
        )


def test_pinned_images_and_named_volumes(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image", "")
        if "build" not in service:
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
    assert set(compose["volumes"]) == {"minio-data", "postgres-data"}


def test_env_example_lists_every_compose_variable() -> None:
    text = COMPOSE.read_text()
    example = (ROOT / ".env.example").read_text()
    for var in set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text)):
        assert var in example, f"{var} missing from .env.example"
    for name in ADMIN_SECRETS:  # set, not commented out: the user fills them in
        assert re.search(rf"^{name}=", example, flags=re.MULTILINE), name


def run_script_with_stub(
    tmp_path: Path, script: str, shell: str, stub: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run an init script with `stub` (a fake mc or psql) first on PATH; what the stub saw."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    fake = bin_dir / stub
    fake.write_text(
        "#!/bin/sh\n"
        f'printf "argv: %s\\n" "$*" >> {log}\n'
        f'[ -t 0 ] || {{ printf "stdin: " >> {log}; cat >> {log}; }}\n'
        f'printf "env MC_HOST_lake: %s\\n" "${{MC_HOST_lake:-}}" >> {log}\n'
    )
    fake.chmod(0o755)
    result = subprocess.run(
        [shell, str(DOCKER / script)],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return result, log.read_text() if log.exists() else ""


def test_create_buckets_gives_the_app_its_own_user_without_a_key_on_a_command_line(
    tmp_path: Path,
) -> None:
    app = {"CRM_S3_ACCESS_KEY_ID": "app-key", "CRM_S3_SECRET_ACCESS_KEY": "app-secret-123"}
    root = {"MINIO_ROOT_USER": "minio-root", "MINIO_ROOT_PASSWORD": "root-password-123"}
    result, calls = run_script_with_stub(tmp_path, "minio-init.sh", "sh", "mc", app | root)
    assert result.returncode == 0, result.stderr
    argv = [line for line in calls.splitlines() if line.startswith("argv: ")]
    assert argv[0] == "argv: mb --ignore-existing lake/data-lake lake/mlflow-artifacts"
    assert any(a.startswith("argv: admin policy create lake crm-app ") for a in argv)
    assert "argv: admin user add lake" in argv
    assert "argv: admin policy attach lake crm-app --user app-key" in argv
    assert "stdin: app-key\napp-secret-123\n" in calls  # the app's keys, on stdin
    for secret in ("app-secret-123", "root-password-123"):
        assert not any(secret in a for a in argv), secret
    assert "env MC_HOST_lake: http://minio-root:root-password-123@minio:9000" in calls


def test_create_buckets_refuses_the_root_keys_as_the_apps(tmp_path: Path) -> None:
    env = {
        "CRM_S3_ACCESS_KEY_ID": "minio-root",
        "MINIO_ROOT_USER": "minio-root",
        "MINIO_ROOT_PASSWORD": "root-password-123",
    }
    result, calls = run_script_with_stub(tmp_path, "minio-init.sh", "sh", "mc", env)
    assert result.returncode != 0 and "must differ from MINIO_ROOT_USER" in result.stderr
    assert calls == ""


def test_postgres_init_creates_a_plain_role_without_its_password_on_a_command_line(
    tmp_path: Path,
) -> None:
    env = {
        "POSTGRES_USER": "postgres",
        "CRM_PG_USER": "crm",
        "CRM_PG_PASSWORD": "p@ss:w/rd#1 'quoted'",
        **{f"CRM_PG_DB_{n}": f"crm_{n.lower()}" for n in ("FEAST_ONLINE", "FEAST_REGISTRY")},
        **{f"CRM_PG_DB_{n}": f"crm_{n.lower()}" for n in ("MLFLOW", "PREFECT")},
    }
    result, calls = run_script_with_stub(tmp_path, "postgres-init.sh", "bash", "psql", env)
    assert result.returncode == 0, result.stderr
    assert "p@ss" not in "\n".join(line for line in calls.splitlines() if line.startswith("argv"))
    assert "\\getenv app_password CRM_PG_PASSWORD" in calls
    assert "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" in calls
    assert calls.count("CREATE DATABASE %I OWNER %I") == 4
    clash = run_script_with_stub(
        tmp_path, "postgres-init.sh", "bash", "psql", env | {"CRM_PG_USER": "postgres"}
    )
    assert clash[0].returncode != 0 and "must not be the superuser" in clash[0].stderr


def test_the_edge_gets_every_placeholder_of_its_template(compose: dict[str, Any]) -> None:
    """The nginx image fills only what its environment holds: a missing EDGE_* would reach
    nginx as a literal and stop it at start-up."""
    template = (DOCKER / "edge.conf.template").read_text()
    needed = set(re.findall(r"\$\{(EDGE_[A-Z_]+)\}", template))
    environment = compose["services"]["edge"]["environment"]
    assert set(environment) == needed
    assert environment["EDGE_RETRY_AFTER_S"] == str(Limits().retry_after_s)  # the scorer's own
    (mounted,) = compose["services"]["edge"]["volumes"]
    assert mounted.endswith(":/etc/nginx/templates/default.conf.template:ro")

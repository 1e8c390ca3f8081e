"""The deployment's HCL, held to the code: Terraform (infra/terraform) and the Nomad jobs
(infra/nomad).

`terraform validate` needs the provider plugins, which only hosted CI can download; these checks
run anywhere. Every .tf, .tfvars, .tfbackend and .nomad.hcl file must parse (python-hcl2), the
outputs must be exactly the prod profile's settings (derived from infra/settings.py, so a new
prod requirement fails here until Terraform provides it), the references between files must
resolve, and the Nomad jobs, the load balancer and infra/nomad/sync_vars.py must agree on jobs,
ports and variables.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from infra.nomad import sync_vars
from infra.settings import (
    PG_SSLMODES,
    PROD_MIN_SSLMODE,
    PROD_REQUIRED,
    STACK_DEFAULTS,
    Settings,
)

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infra" / "terraform"
NOMAD = ROOT / "infra" / "nomad"
HCL_FILES = sorted(
    path
    for path in [
        *TERRAFORM.rglob("*.tf"),
        *TERRAFORM.rglob("*.tfvars"),
        *TERRAFORM.rglob("*.tfbackend"),
        *NOMAD.glob("*.nomad.hcl"),
    ]
    if ".terraform" not in path.parts  # `terraform init`'s downloads
)
ENVIRONMENTS = ("staging", "prod")
# The prod profile leaves it unset on AWS: None means the provider's own endpoint.
AWS_DEFAULT_FIELDS = {"s3_endpoint_url"}
_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, preserve_heredocs=False, strip_string_quotes=True
)


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


MODULES = sorted(path for path in (TERRAFORM / "modules").iterdir() if path.is_dir())


def blocks(kind: str, module: Path = TERRAFORM) -> dict[str, Any]:
    """Every `kind` block (output, variable, ...) of a module (the root module), by name."""
    found: dict[str, Any] = {}
    for path in sorted(module.glob("*.tf")):
        for block in parse(path).get(kind, []):
            for name, body in block.items():
                assert name not in found, f"{kind} {name!r} declared twice"
                found[name] = body
    return found


def declared(kind: str, module: Path = TERRAFORM) -> set[str]:
    """`type.name` of every resource, data source or ephemeral resource of a module (the root)."""
    names = set()
    for path in sorted(module.glob("*.tf")):
        for block in parse(path).get(kind, []):
            for rtype, bodies in block.items():
                names |= {f"{rtype}.{name}" for name in bodies}
    return names


def locals_(module: Path = TERRAFORM) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(module.glob("*.tf")):
        for block in parse(path).get("locals", []):
            merged |= block
    return merged


def outputs() -> dict[str, Any]:
    return blocks("output")


def code(path: Path) -> str:
    """The file without its comments (`#` and `//` to the end of a line, outside strings)."""
    return re.sub(
        r'^((?:[^"#\n]|"(?:[^"\\\n]|\\.)*")*?)\s*(?:#|//).*$', r"\1", path.read_text(), flags=re.M
    )


def is_literal(value: Any) -> bool:
    return not (isinstance(value, str) and "${" in value)


# --- Every file parses ---------------------------------------------------------------------
def test_there_is_infrastructure_to_check() -> None:
    kinds = {
        suffix
        for path in HCL_FILES
        for suffix in (".tf", ".tfvars", ".tfbackend", ".nomad.hcl")
        if path.name.endswith(suffix)
    }
    assert kinds == {".tf", ".tfvars", ".tfbackend", ".nomad.hcl"}, kinds
    assert {f"{env}.tfvars" for env in ENVIRONMENTS} <= {p.name for p in HCL_FILES}


@pytest.mark.parametrize("path", HCL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_file_parses(path: Path) -> None:
    document = parse(path)
    assert document, f"{path} is empty"
    if path.name.endswith(".nomad.hcl"):
        (job,) = document["job"]  # one job per file
        assert len(job) == 1


# --- Outputs: exactly the prod profile's settings ------------------------------------------
def test_every_output_is_a_setting() -> None:
    fields = Settings.model_fields
    for name in outputs():
        field = sync_vars.output_field(name)
        assert field in fields, f"output {name!r} is no setting (CRM_{field.upper()})"


def test_every_setting_prod_needs_is_an_output() -> None:
    provided = {sync_vars.output_field(name) for name in outputs()}
    needed = {"profile", *PROD_REQUIRED, *STACK_DEFAULTS} - AWS_DEFAULT_FIELDS
    missing = sorted(f"CRM_{name.upper()}" for name in needed - provided)
    assert not missing, f"infra/terraform/outputs.tf provides no {missing}"


def test_secrets_are_outputs_only_as_secret_references() -> None:
    for name, body in outputs().items():
        field = sync_vars.output_field(name)
        if sync_vars.is_secret_field(field):
            assert name == f"{field}{sync_vars.SECRET_SUFFIX}" or body.get("sensitive") is True
            assert re.fullmatch(
                r"\$\{aws_secretsmanager_secret\.\w+(\[.*\])?\.arn\}", body["value"]
            )
        else:
            assert not name.endswith(sync_vars.SECRET_SUFFIX), f"{name}: {field} is no secret"
            assert body.get("sensitive") is not True, f"{name}: {field} is no secret"


def test_output_values_meet_the_prod_checks() -> None:
    values = {sync_vars.output_field(name): body["value"] for name, body in outputs().items()}
    assert values["profile"] == "prod"
    assert PG_SSLMODES.index(values["pg_sslmode"]) >= PG_SSLMODES.index(PROD_MIN_SSLMODE)
    for name, value in values.items():  # no published stack default as a literal
        assert not (is_literal(value) and STACK_DEFAULTS.get(name) == value), name


def fake_outputs(environment: str = "prod") -> dict[str, Any]:
    """The outputs as `terraform output` would give them: literals as written, computed values
    as placeholders, secrets as ARNs in the environment's namespace."""
    fake: dict[str, Any] = {}
    for name, body in outputs().items():
        field = sync_vars.output_field(name)
        if name.endswith(sync_vars.SECRET_SUFFIX):
            fake[name] = f"arn:aws:secretsmanager:eu-west-1:1:secret:crm/{environment}/{field}-Ab1"
        elif is_literal(body["value"]):
            fake[name] = body["value"]
        else:
            fake[name] = 5432 if Settings.model_fields[field].annotation is int else f"<{field}>"
    return fake


def read_fake_secret(secret_id: str) -> str:
    return f"value-of-{secret_id.rsplit('/', 1)[-1]}"


def test_the_outputs_make_a_valid_prod_profile() -> None:
    env = sync_vars.settings_env(fake_outputs(), read_fake_secret)
    sync_vars.check_prod(env)  # raises with the prod profile's own message
    assert env["CRM_PROFILE"] == "prod" and env["CRM_PG_PASSWORD"].startswith("value-of-")


def test_sync_refuses_another_environments_state() -> None:
    with pytest.raises(sync_vars.SyncError, match="not environment 'prod'"):
        sync_vars.job_variables("prod", fake_outputs("staging"), read_fake_secret)


def test_sync_refuses_an_output_that_is_no_setting() -> None:
    with pytest.raises(sync_vars.SyncError, match="no setting"):
        sync_vars.settings_env({**fake_outputs(), "pg_hostname": "x"}, read_fake_secret)
    with pytest.raises(sync_vars.SyncError, match="secrets"):
        sync_vars.settings_env({**fake_outputs(), "pg_password": "x"}, read_fake_secret)


# --- Terraform's own consistency (what `terraform validate` would catch) -------------------
def test_tfvars_set_declared_variables_and_every_required_one() -> None:
    variables = blocks("variable")
    required = {name for name, body in variables.items() if "default" not in body}
    for env in ENVIRONMENTS:
        values = parse(TERRAFORM / "envs" / f"{env}.tfvars")
        assert set(values) <= set(variables), f"{env}.tfvars: {set(values) - set(variables)}"
        assert required <= set(values), f"{env}.tfvars lacks {required - set(values)}"
        assert values["environment"] == env


def test_prod_keeps_its_safety_settings() -> None:
    # checkov's multi-AZ check is skipped inline because staging turns it off.
    prod = parse(TERRAFORM / "envs" / "prod.tfvars")
    assert prod.get("db_multi_az", blocks("variable")["db_multi_az"]["default"]) is True
    assert prod.get("deletion_protection", True) is True
    assert prod.get("single_nat_gateway", False) is False


def test_backends_keep_one_state_per_environment() -> None:
    keys = set()
    for env in ENVIRONMENTS:
        backend = parse(TERRAFORM / "envs" / f"{env}.s3.tfbackend")
        assert backend["encrypt"] is True and backend["use_lockfile"] is True
        keys.add(backend["key"])
    assert len(keys) == len(ENVIRONMENTS)


@pytest.mark.parametrize("module", [TERRAFORM, *MODULES], ids=lambda p: str(p.relative_to(ROOT)))
def test_references_resolve(module: Path) -> None:
    variables, names = set(blocks("variable", module)), set(locals_(module))
    resources = declared("resource", module)
    data, ephemeral = declared("data", module), declared("ephemeral", module)
    calls = blocks("module", module)
    reference = re.compile(r"(?<![\w.])(data\.|ephemeral\.)?((?:aws|random)_\w+\.\w+)")
    for path in sorted(module.glob("*.tf")):
        text = code(path)
        for name in re.findall(r"(?<![\w.])var\.(\w+)", text):
            assert name in variables, f"{path.name}: var.{name} is not declared"
        for name in re.findall(r"(?<![\w.])local\.(\w+)", text):
            assert name in names, f"{path.name}: local.{name} is not defined"
        for kind, name in reference.findall(text):
            known = {"data.": data, "ephemeral.": ephemeral, "": resources}[kind]
            assert name in known, f"{path.name}: {kind}{name} is not declared"
        for name in re.findall(r"(?<![\w.])module\.(\w+)", text):
            assert name in calls, f"{path.name}: module.{name} is not declared"


def test_module_calls_match_their_modules() -> None:
    calls = blocks("module")
    assert calls, "the root module calls no module"
    meta = {"source", "version", "count", "for_each", "providers", "depends_on"}
    root_code = "".join(code(path) for path in sorted(TERRAFORM.glob("*.tf")))
    for name, call in calls.items():
        source = (TERRAFORM / call["source"]).resolve()
        assert source in MODULES, f"module {name}: {call['source']} is no local module"
        variables = blocks("variable", source)
        required = {var for var, body in variables.items() if "default" not in body}
        given = set(call) - meta
        assert given <= set(variables), f"module {name}: no variable {given - set(variables)}"
        assert required <= given, f"module {name} lacks {required - given}"
        provided = blocks("output", source)
        for output in re.findall(rf"(?<![\w.])module\.{name}(?:\[[^]]*\])?\.(\w+)", root_code):
            assert output in provided, f"module.{name}.{output} is no output"


def test_templates_get_exactly_their_variables() -> None:
    text = code(TERRAFORM / "nomad.tf")
    for template, arguments in re.findall(
        r'templatefile\("\$\{path.module\}/([^"]+)", \{(.*?)\}\)', text, re.S
    ):
        given = set(re.findall(r"^\s*(\w+)\s*=", arguments, re.M))
        used = set(re.findall(r"(?<!\$)\$\{(\w+)\}", (TERRAFORM / template).read_text()))
        assert given == used, f"{template}: given {sorted(given)}, used {sorted(used)}"


# --- Nomad jobs, the load balancer and sync_vars agree --------------------------------------
def nomad_jobs() -> dict[str, tuple[Path, dict[str, Any]]]:
    jobs = {}
    for path in sorted(NOMAD.glob("*.nomad.hcl")):
        ((name, body),) = parse(path)["job"][0].items()
        jobs[name] = (path, body)
    return jobs


def tasks(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        task
        for group in job["group"]
        for tasks_ in group.values()
        for entry in tasks_.get("task", [])
        for task in entry.values()
    ]


def test_each_job_reads_its_own_variable_and_sync_writes_it() -> None:
    jobs = nomad_jobs()
    written = sync_vars.job_variables(
        "prod", fake_outputs(), read_fake_secret, master={"username": "u", "password": "p"}
    )
    assert set(written) == {f"nomad/jobs/{name}" for name in jobs}
    for name, (path, _) in jobs.items():
        assert set(re.findall(r'nomadVar "([^"]+)"', path.read_text())) == {f"nomad/jobs/{name}"}
    app = sync_vars.settings_env(fake_outputs(), read_fake_secret)
    for name in sync_vars.APP_JOBS:
        assert written[f"nomad/jobs/{name}"] == app


def test_the_servers_roles_and_secrets_are_terraforms() -> None:
    assert locals_()["pg_roles"] == {
        "app": "crm_app",
        "mlflow": sync_vars.MLFLOW_ROLE,
        "prefect": sync_vars.PREFECT_ROLE,
    }
    asked: list[str] = []

    def read(secret_id: str) -> str:
        asked.append(secret_id)
        return "x"

    sync_vars.job_variables("prod", fake_outputs(), read, master={"username": "u", "password": "p"})
    named = {secret for secret in asked if not secret.startswith("arn:")}
    terraform = set(locals_()["generated_secrets"]) | set(locals_()["access_key_secrets"])
    assert named and named <= {f"crm/prod/{name}" for name in terraform}


def test_secret_environments_stay_in_the_secrets_folder() -> None:
    for name, (_, job) in nomad_jobs().items():
        for task in tasks(job):
            assert task["driver"] == "docker" and task["config"][0]["image"] == "${var.image}", name
            for template in task.get("template", []):
                if template.get("env"):
                    assert template["destination"].startswith("secrets/"), name


def test_the_load_balancer_forwards_to_the_jobs_ports() -> None:
    services = locals_()["services"]
    jobs = nomad_jobs()
    for service, job in {
        "mlflow": "crm-mlflow",
        "prefect": "crm-prefect-server",
        "scorer": "crm-scorer",
        "explorer": "crm-explorer",
    }.items():
        (group,) = jobs[job][1]["group"][0].values()
        ports = [port for network in group["network"] for port in network["port"]]
        assert [p["http"]["static"] for p in ports] == [services[service]["port"]], job


def test_the_database_bootstrap_gets_every_value_its_sql_reads() -> None:
    written = sync_vars.job_variables(
        "prod", fake_outputs(), read_fake_secret, master={"username": "u", "password": "p"}
    )
    items = written[f"nomad/jobs/{sync_vars.BOOTSTRAP_JOB}"]
    sql = (NOMAD / "db-bootstrap.nomad.hcl").read_text()
    read = set(re.findall(r"^\s*\\getenv \w+ (\w+)$", sql, re.M))
    assert read and read <= set(items), sorted(read - set(items))
    assert {"PGHOST", "PGUSER", "PGPASSWORD"} <= set(items) and items["PGSSLMODE"] == "require"

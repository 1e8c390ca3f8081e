"""The Nomad jobs' environment, from `terraform output` and Secrets Manager.

    uv run python -m infra.nomad.sync_vars prod               # every service's variable
    uv run python -m infra.nomad.sync_vars prod --bootstrap   # and the database bootstrap's

Terraform's outputs are exactly the prod profile's settings (infra/terraform/outputs.tf): output
`<field>` is CRM_<FIELD>, and `<field>_secret_arn` names the Secrets Manager secret that holds it.
This reads them from the state of the environment `terraform init` was pointed at, resolves the
secrets, checks that the result passes the prod profile's own validation (infra/settings.py), and
writes one Nomad variable per job at nomad/jobs/<job>, which that job's template turns into its
environment (infra/nomad/*.nomad.hcl). Secret values go from Secrets Manager to `nomad var put`'s
standard input: never onto a command line, into a file or onto the terminal.

It needs Terraform, the Nomad CLI (NOMAD_ADDR and NOMAD_TOKEN set, docs/deploy.md) and AWS
credentials that can read the environment's secrets.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote

from pydantic import SecretStr, ValidationError

from infra.errors import CRMError
from infra.settings import PROJECT_ROOT, Settings, settings_problems

TERRAFORM_DIR = PROJECT_ROOT / "infra" / "terraform"
SECRET_SUFFIX = "_secret_arn"  # nosec B105  # a suffix of output names, not a password

# The jobs that run the application with the prod profile: each gets every CRM_* setting.
APP_JOBS = ("crm-prefect-worker", "crm-scorer", "crm-explorer", "crm-deploy")
MLFLOW_JOB = "crm-mlflow"
PREFECT_SERVER_JOB = "crm-prefect-server"
BOOTSTRAP_JOB = "crm-db-bootstrap"
# The servers' own PostgreSQL roles (infra/terraform/main.tf, local.pg_roles): the application's
# is the output pg_user.
MLFLOW_ROLE = "crm_mlflow"
PREFECT_ROLE = "crm_prefect"

ReadSecret = Callable[[str], str]


class SyncError(CRMError):
    """The Nomad variables could not be written; the message says why and what to do."""


def output_field(output: str) -> str:
    """The Settings field an output carries: `pg_host` -> pg_host, `pg_password_secret_arn` ->
    pg_password."""
    return output.removesuffix(SECRET_SUFFIX)


def is_secret_field(field: str) -> bool:
    """A SecretStr setting (credentials): handed over as a Secrets Manager ARN, never a value."""
    annotation = Settings.model_fields[field].annotation
    return annotation is SecretStr or SecretStr in get_args(annotation)


def settings_env(outputs: Mapping[str, Any], read_secret: ReadSecret) -> dict[str, str]:
    """CRM_<FIELD> for every output, secrets read through `read_secret(arn)`.

    An output that is no Settings field, or a secret that is not handed over as an ARN, is a
    mistake in outputs.tf: refused rather than passed on to the services.
    """
    fields = Settings.model_fields
    env: dict[str, str] = {}
    for output, value in sorted(outputs.items()):
        field = output_field(output)
        if field not in fields:
            raise SyncError(
                f"Terraform output {output!r} is no setting of infra/settings.py: fix "
                "infra/terraform/outputs.tf (outputs are `<field>` or `<field>_secret_arn`)."
            )
        is_secret = is_secret_field(field)
        if is_secret != output.endswith(SECRET_SUFFIX):
            raise SyncError(
                f"Terraform output {output!r}: secrets (and only they) are handed over as "
                f"`<field>{SECRET_SUFFIX}`; fix infra/terraform/outputs.tf."
            )
        env[f"CRM_{field.upper()}"] = read_secret(str(value)) if is_secret else str(value)
    return env


def check_prod(env: Mapping[str, str]) -> None:
    """The services would refuse to start with `env`: say so before anything is written."""
    values = {name.removeprefix("CRM_").lower(): value for name, value in env.items()}
    try:
        Settings.model_validate(values)  # these values only: no environment, no .env
    except ValidationError as exc:
        raise SyncError(
            f"The Terraform outputs do not make a valid prod profile: {settings_problems(exc)}"
        ) from exc


def check_environment(outputs: Mapping[str, Any], environment: str) -> None:
    """The state Terraform reads belongs to `environment` (its secrets are under crm/<env>/)."""
    arns = [str(v) for k, v in outputs.items() if k.endswith(SECRET_SUFFIX)]
    other = [arn for arn in arns if f":secret:crm/{environment}/" not in arn]
    if not arns or other:
        raise SyncError(
            f"`terraform output` is not environment {environment!r} (secrets: {other or 'none'}): "
            f"run `terraform init -reconfigure -backend-config=envs/{environment}.s3.tfbackend` "
            "in infra/terraform first."
        )


def job_variables(
    environment: str,
    outputs: Mapping[str, Any],
    read_secret: ReadSecret,
    master: Mapping[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """Nomad variable path -> items, for every job (and the bootstrap's when `master` is given).

    `master` is RDS's master secret ({"username": ..., "password": ...}); `read_secret` takes a
    secret's ARN or name.
    """
    check_environment(outputs, environment)
    app = settings_env(outputs, read_secret)
    check_prod(app)

    def secret(name: str) -> str:
        # The servers' own secrets, by the names secrets.tf gives them (they are no setting).
        return read_secret(f"crm/{environment}/{name}")

    pg = {name: app[name] for name in ("CRM_PG_HOST", "CRM_PG_PORT")}
    variables = {f"nomad/jobs/{job}": dict(app) for job in APP_JOBS}
    variables[f"nomad/jobs/{MLFLOW_JOB}"] = {
        # What infra/docker/mlflow_server.py reads: its own role and its own IAM user.
        **pg,
        "CRM_PG_USER": MLFLOW_ROLE,
        "CRM_PG_PASSWORD": secret("mlflow/pg-password"),
        "CRM_PG_DB_MLFLOW": app["CRM_PG_DB_MLFLOW"],
        "CRM_MLFLOW_BUCKET": app["CRM_MLFLOW_BUCKET"],
        "CRM_S3_ACCESS_KEY_ID": secret("mlflow/s3-access-key-id"),
        "CRM_S3_SECRET_ACCESS_KEY": secret("mlflow/s3-secret-access-key"),
        "AWS_DEFAULT_REGION": app["CRM_S3_REGION"],
    }
    prefect_password = quote(secret("prefect/pg-password"), safe="")
    variables[f"nomad/jobs/{PREFECT_SERVER_JOB}"] = {
        "PREFECT_API_DATABASE_CONNECTION_URL": (
            f"postgresql+asyncpg://{PREFECT_ROLE}:{prefect_password}@{pg['CRM_PG_HOST']}:"
            f"{pg['CRM_PG_PORT']}/{app['CRM_PG_DB_PREFECT']}?ssl={app['CRM_PG_SSLMODE']}"
        ),
    }
    if master is not None:
        variables[f"nomad/jobs/{BOOTSTRAP_JOB}"] = {
            "PGHOST": pg["CRM_PG_HOST"],
            "PGPORT": pg["CRM_PG_PORT"],
            "PGDATABASE": "postgres",
            "PGSSLMODE": app["CRM_PG_SSLMODE"],
            "PGUSER": master["username"],
            "PGPASSWORD": master["password"],
            "CRM_APP_ROLE": app["CRM_PG_USER"],
            "CRM_APP_PASSWORD": app["CRM_PG_PASSWORD"],
            "CRM_MLFLOW_ROLE": MLFLOW_ROLE,
            "CRM_MLFLOW_PASSWORD": secret("mlflow/pg-password"),
            "CRM_PREFECT_ROLE": PREFECT_ROLE,
            "CRM_PREFECT_PASSWORD": secret("prefect/pg-password"),
            **{name: value for name, value in app.items() if name.startswith("CRM_PG_DB_")},
        }
    return variables


# --- The tools -------------------------------------------------------------------------------
def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SyncError(f"`{name}` is not on PATH: install it (docs/deploy.md lists the tools).")
    return path


def terraform_outputs(directory: Path = TERRAFORM_DIR) -> dict[str, Any]:
    result = subprocess.run(  # nosec B603  # fixed program and arguments, no shell
        [_tool("terraform"), f"-chdir={directory}", "output", "-json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SyncError(f"`terraform output -json` failed:\n{result.stderr.strip()}")
    outputs = {name: entry["value"] for name, entry in json.loads(result.stdout).items()}
    if not outputs:
        raise SyncError(f"No Terraform outputs in {directory}: run `terraform apply` first.")
    return outputs


def put_variable(path: str, items: Mapping[str, str]) -> None:
    """`nomad var put` with the items on its standard input (never on its command line)."""
    spec = json.dumps({"Path": path, "Items": dict(items)})
    result = subprocess.run(  # nosec B603  # fixed program and arguments, no shell
        [_tool("nomad"), "var", "put", "-force", "-in=json", "-out=none", path, "-"],
        input=spec,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SyncError(f"`nomad var put {path}` failed: {result.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("environment", help="staging or prod: the state `terraform init` chose")
    parser.add_argument(
        "--bootstrap",
        action="store_true",
        help="also write RDS's master credentials for infra/nomad/db-bootstrap.nomad.hcl",
    )
    args = parser.parse_args(argv)
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        outputs = terraform_outputs()
        region = str(outputs["s3_region"])
        client: Any = boto3.client("secretsmanager", region_name=region)

        def read_secret(secret_id: str) -> str:
            return str(client.get_secret_value(SecretId=secret_id)["SecretString"])

        master = None
        if args.bootstrap:
            rds: Any = boto3.client("rds", region_name=region)
            found = rds.describe_db_instances(DBInstanceIdentifier=f"crm-{args.environment}")
            master = json.loads(
                read_secret(found["DBInstances"][0]["MasterUserSecret"]["SecretArn"])
            )
        variables = job_variables(args.environment, outputs, read_secret, master)
        for path, items in variables.items():
            put_variable(path, items)
            print(f"{path}: {len(items)} items")
    except (BotoCoreError, ClientError) as exc:
        print(f"error: AWS refused or failed ({exc}): check the AWS credentials.", file=sys.stderr)
        return 1
    except CRMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`mlflow server` for docker compose, with the database password kept off its command line.

The container gets the application's credentials from `env_file: .env` (CRM_PG_*, CRM_S3_*,
the stack profile's defaults when unset). This builds the backend store's URI from them, user
and password URL-encoded, and hands it to `mlflow server` in MLFLOW_BACKEND_STORE_URI, which it
reads; the artifact proxy gets the application's S3 keys as AWS_* variables. Anything on a
command line can be read by every user of the host in `ps`; the environment cannot.

It runs inside the MLflow image, which has no copy of the project: standard library only.
"""

from __future__ import annotations

import os
from urllib.parse import quote


def setting(name: str, default: str) -> str:
    return os.environ.get(name) or default


def backend_store_uri() -> str:
    user = quote(setting("CRM_PG_USER", "crm"), safe="")
    password = quote(setting("CRM_PG_PASSWORD", "crm"), safe="")
    host = setting("CRM_PG_HOST", "postgres")
    port = setting("CRM_PG_PORT", "5432")
    database = setting("CRM_PG_DB_MLFLOW", "crm_mlflow")
    return f"postgresql://{user}:{password}@{host}:{port}/{database}"


def main() -> None:
    os.environ["MLFLOW_BACKEND_STORE_URI"] = backend_store_uri()
    os.environ["AWS_ACCESS_KEY_ID"] = setting("CRM_S3_ACCESS_KEY_ID", "crm")
    os.environ["AWS_SECRET_ACCESS_KEY"] = setting("CRM_S3_SECRET_ACCESS_KEY", "crm-secret-key")
    bucket = setting("CRM_MLFLOW_BUCKET", "mlflow-artifacts")
    # All interfaces of its own container: compose publishes the port on 127.0.0.1 only.
    host = "0.0.0.0"  # nosec B104  # the container's own interfaces; compose binds BIND_ADDRESS
    argv = ["mlflow", "server", "--host", host, "--port", "5000", "--workers", "1"]
    argv += ["--artifacts-destination", f"s3://{bucket}/", "--serve-artifacts"]
    os.execvp(argv[0], argv)  # nosec B606  # a fixed program and arguments, no shell


if __name__ == "__main__":
    main()

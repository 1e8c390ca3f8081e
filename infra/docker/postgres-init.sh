#!/bin/bash
# First start of the postgres container: the application's role and one database per consumer
# (Feast online store, Feast registry, MLflow, Prefect), owned by that role.
# The role is no superuser and cannot create databases or roles; the superuser (POSTGRES_USER,
# its password POSTGRES_PASSWORD from .env) stays for administration only. Values come from
# the environment and reach psql through \getenv: never through a command line.
set -euo pipefail
export CRM_PG_USER="${CRM_PG_USER:-crm}"
export CRM_PG_PASSWORD="${CRM_PG_PASSWORD:-crm}"
if [ "$CRM_PG_USER" = "$POSTGRES_USER" ]; then
  echo "CRM_PG_USER must not be the superuser $POSTGRES_USER: the application gets its own role." >&2
  exit 1
fi

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
\getenv app_user CRM_PG_USER
\getenv app_password CRM_PG_PASSWORD
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L',
              :'app_user', :'app_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user')\gexec
SQL

for db in "$CRM_PG_DB_FEAST_ONLINE" "$CRM_PG_DB_FEAST_REGISTRY" "$CRM_PG_DB_MLFLOW" "$CRM_PG_DB_PREFECT"; do
  CRM_DB="$db" psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
\getenv app_user CRM_PG_USER
\getenv db CRM_DB
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'app_user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db')\gexec
SQL
done

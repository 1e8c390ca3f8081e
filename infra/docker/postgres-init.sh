#!/bin/bash
# One database per consumer: Feast online store, Feast registry, MLflow, Prefect.
set -euo pipefail
for db in "$CRM_PG_DB_FEAST_ONLINE" "$CRM_PG_DB_FEAST_REGISTRY" "$CRM_PG_DB_MLFLOW" "$CRM_PG_DB_PREFECT"; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
SELECT 'CREATE DATABASE "$db" OWNER "$POSTGRES_USER"'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db')\gexec
SQL
done

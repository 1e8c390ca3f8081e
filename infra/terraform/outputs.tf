# Exactly the settings the prod profile reads (infra/settings.py), one output per setting:
# output `<field>` is CRM_<FIELD>; a secret is handed over as `<field>_secret_arn`, the ARN of
# the Secrets Manager secret that holds CRM_<FIELD>, so no secret value is an output.
# tests/unit/test_infra_hcl.py holds this file to Settings (every output a field, every field the
# prod profile requires an output), and infra/nomad/sync-vars.sh turns it into the Nomad jobs'
# environment. Nothing else is an output: operators find the rest by name (crm-<environment>).

output "profile" {
  description = "CRM_PROFILE: the application's profile on this platform."
  value       = "prod"
}

output "s3_region" {
  description = "CRM_S3_REGION"
  value       = var.region
}

output "lake_bucket" {
  description = "CRM_LAKE_BUCKET: the data lake."
  value       = module.data_bucket["lake"].bucket
}

output "mlflow_bucket" {
  description = "CRM_MLFLOW_BUCKET: MLflow's artifacts."
  value       = module.data_bucket["mlflow"].bucket
}

output "s3_access_key_id_secret_arn" {
  description = "CRM_S3_ACCESS_KEY_ID, from this Secrets Manager secret."
  value       = aws_secretsmanager_secret.main["app/s3-access-key-id"].arn
}

output "s3_secret_access_key_secret_arn" {
  description = "CRM_S3_SECRET_ACCESS_KEY, from this Secrets Manager secret."
  value       = aws_secretsmanager_secret.main["app/s3-secret-access-key"].arn
}

output "pg_host" {
  description = "CRM_PG_HOST: the RDS instance."
  value       = aws_db_instance.main.address
}

output "pg_port" {
  description = "CRM_PG_PORT"
  value       = aws_db_instance.main.port
}

output "pg_user" {
  description = "CRM_PG_USER: the application's role (owns the Feast databases only)."
  value       = local.pg_roles.app
}

output "pg_password_secret_arn" {
  description = "CRM_PG_PASSWORD, from this Secrets Manager secret."
  value       = aws_secretsmanager_secret.main["app/pg-password"].arn
}

output "pg_sslmode" {
  description = "CRM_PG_SSLMODE: RDS refuses connections without TLS (rds.force_ssl)."
  value       = "require"
}

output "pg_db_feast_online" {
  description = "CRM_PG_DB_FEAST_ONLINE"
  value       = local.pg_databases.feast_online.name
}

output "pg_db_feast_registry" {
  description = "CRM_PG_DB_FEAST_REGISTRY"
  value       = local.pg_databases.feast_registry.name
}

output "pg_db_mlflow" {
  description = "CRM_PG_DB_MLFLOW: the MLflow server's database (its own role, crm_mlflow)."
  value       = local.pg_databases.mlflow.name
}

output "pg_db_prefect" {
  description = "CRM_PG_DB_PREFECT: the Prefect server's database (its own role, crm_prefect)."
  value       = local.pg_databases.prefect.name
}

output "mlflow_tracking_uri" {
  description = "CRM_MLFLOW_TRACKING_URI: the MLflow server behind the internal load balancer."
  value       = "https://mlflow.${var.domain_name}"
}

output "prefect_api_url" {
  description = "CRM_PREFECT_API_URL: the Prefect server's API behind the internal load balancer."
  value       = "https://prefect.${var.domain_name}/api"
}

output "scorer_url" {
  description = "CRM_SCORER_URL: the BentoML scorer, for the explorer and other clients."
  value       = "https://scorer.${var.domain_name}"
}

output "api_token_secret_arn" {
  description = "CRM_API_TOKEN, from this Secrets Manager secret."
  value       = aws_secretsmanager_secret.main["app/api-token"].arn
}

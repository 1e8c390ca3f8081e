data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  name       = "crm-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  azs        = var.availability_zones
  nat_count  = var.single_nat_gateway ? 1 : length(var.availability_zones)

  tags = {
    Project     = "crm-feature-platform"
    Environment = var.environment
    ManagedBy   = "terraform"
  }

  # PostgreSQL: one login role per consumer, none a superuser. The application (Feast online
  # store and registry: CRM_PG_USER) never sees the MLflow or Prefect databases; the MLflow and
  # Prefect servers each own only their own. infra/nomad/db-bootstrap.nomad.hcl creates them.
  pg_master_user = "crm_admin"
  pg_roles = {
    app     = "crm_app"
    mlflow  = "crm_mlflow"
    prefect = "crm_prefect"
  }
  pg_databases = {
    feast_online   = { name = "crm_feast_online", owner = local.pg_roles.app }
    feast_registry = { name = "crm_feast_registry", owner = local.pg_roles.app }
    mlflow         = { name = "crm_mlflow", owner = local.pg_roles.mlflow }
    prefect        = { name = "crm_prefect", owner = local.pg_roles.prefect }
  }

  # The services behind the internal load balancer: <name>.<domain_name> -> Nomad nodes:<port>.
  # Ports are the Nomad jobs' static ports (infra/nomad/*.nomad.hcl); health paths are each
  # server's own readiness endpoint.
  services = {
    mlflow   = { port = 5000, health = "/health" }
    prefect  = { port = 4200, health = "/api/health" }
    scorer   = { port = 3000, health = "/readyz" }
    explorer = { port = 8501, health = "/_stcore/health" }
  }

  # Images CI builds and the Nomad jobs run (infra/docker/*.Dockerfile).
  images = toset(["worker", "scorer", "explorer", "mlflow"])
}

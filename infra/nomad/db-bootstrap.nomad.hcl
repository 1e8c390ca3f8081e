# One-shot, once per environment and after each password change (var.secret_version): the
# PostgreSQL roles and databases on RDS, with RDS's master user. Idempotent.
#
#   crm_app     owns crm_feast_online and crm_feast_registry (the application: CRM_PG_USER)
#   crm_mlflow  owns crm_mlflow (the MLflow server)
#   crm_prefect owns crm_prefect (the Prefect server)
#
# No role is a superuser or can create roles or databases; every database is closed to PUBLIC,
# so each role connects to its own databases only. Passwords are reset to the ones in Secrets
# Manager. It runs inside the VPC because RDS has no route from anywhere else (docs/deploy.md:
# why not Terraform's postgresql provider). The master credentials reach it through the Nomad
# variable nomad/jobs/crm-db-bootstrap, which infra/nomad/sync-vars.sh writes and which is purged
# once the job has succeeded:
#
#   infra/nomad/sync-vars.sh prod --bootstrap
#   nomad job run infra/nomad/db-bootstrap.nomad.hcl
#   nomad var purge nomad/jobs/crm-db-bootstrap

variable "image" {
  type        = string
  default     = "postgres:16.10-bookworm"
  description = "An image with psql 15 or later (\\getenv)."
}

job "crm-db-bootstrap" {
  type = "batch"

  group "bootstrap" {
    restart {
      attempts = 2
      interval = "10m"
      delay    = "20s"
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "psql" {
      driver = "docker"

      config {
        image   = var.image
        command = "psql"
        args    = ["--no-psqlrc", "--set", "ON_ERROR_STOP=1", "--file", "/local/bootstrap.sql"]
      }

      # PGHOST, PGPORT, PGUSER, PGPASSWORD (the master user), PGSSLMODE=require, the three roles
      # and their passwords, the four database names.
      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/crm-db-bootstrap" }}{{ range $key, $value := . }}{{ $key }}={{ $value }}
          {{ end }}{{ end }}
        EOT
        destination = "secrets/pg.env"
        env         = true
      }

      # Values reach SQL through \getenv and format(%I, %L): quoted, never pasted into the text.
      template {
        destination = "local/bootstrap.sql"
        data        = <<-EOT
          \getenv app_role CRM_APP_ROLE
          \getenv app_password CRM_APP_PASSWORD
          \getenv mlflow_role CRM_MLFLOW_ROLE
          \getenv mlflow_password CRM_MLFLOW_PASSWORD
          \getenv prefect_role CRM_PREFECT_ROLE
          \getenv prefect_password CRM_PREFECT_PASSWORD
          \getenv db_feast_online CRM_PG_DB_FEAST_ONLINE
          \getenv db_feast_registry CRM_PG_DB_FEAST_REGISTRY
          \getenv db_mlflow CRM_PG_DB_MLFLOW
          \getenv db_prefect CRM_PG_DB_PREFECT

          -- Roles: created, or their password reset to the one in Secrets Manager.
          SELECT format(
                   CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = r.name)
                        THEN 'ALTER ROLE %I LOGIN NOCREATEDB NOCREATEROLE PASSWORD %L'
                        ELSE 'CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L'
                   END, r.name, r.password)
          FROM (VALUES (:'app_role', :'app_password'),
                       (:'mlflow_role', :'mlflow_password'),
                       (:'prefect_role', :'prefect_password')) AS r(name, password)
          \gexec

          -- PostgreSQL 16: making a role a database's owner takes membership in it.
          SELECT format('GRANT %I TO CURRENT_USER', r.name)
          FROM (VALUES (:'app_role'), (:'mlflow_role'), (:'prefect_role')) AS r(name)
          WHERE NOT pg_has_role(CURRENT_USER, r.name, 'MEMBER')
          \gexec

          -- Databases: created with their owner, the owner enforced, closed to everyone else.
          CREATE TEMPORARY TABLE crm_databases (name text, owner text);
          INSERT INTO crm_databases VALUES (:'db_feast_online', :'app_role'),
                                           (:'db_feast_registry', :'app_role'),
                                           (:'db_mlflow', :'mlflow_role'),
                                           (:'db_prefect', :'prefect_role');
          SELECT format('CREATE DATABASE %I OWNER %I', d.name, d.owner)
          FROM crm_databases AS d
          WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d.name)
          \gexec
          SELECT format('ALTER DATABASE %I OWNER TO %I', d.name, d.owner) FROM crm_databases AS d
          \gexec
          SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', d.name) FROM crm_databases AS d
          \gexec
        EOT
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}

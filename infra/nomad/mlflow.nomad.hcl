# MLflow tracking server and model registry on RDS (its own role and database), artifacts proxied
# to the MLflow bucket with the MLflow IAM user's keys. The image is infra/docker/mlflow.Dockerfile,
# whose entrypoint builds the database URI from CRM_PG_* and keeps the password off the command
# line. Its environment is the Nomad variable nomad/jobs/crm-mlflow (infra/nomad/sync-vars.sh).
#
#   nomad job run -var image=<account>.dkr.ecr.<region>.amazonaws.com/crm-prod/mlflow:<tag> \
#     -var domain=crm.example.com infra/nomad/mlflow.nomad.hcl

variable "image" {
  type        = string
  description = "The MLflow image, by immutable tag or digest."
}

variable "domain" {
  type        = string
  description = "The services' DNS zone: the server answers as mlflow.<domain>."
}

job "crm-mlflow" {
  type = "service"

  # Otherwise Nomad's defaults: one allocation at a time, healthy once its checks pass for 10s,
  # within 5m, the whole deployment within 10m.
  update {
    auto_revert = true
  }

  group "mlflow" {
    network {
      # Static: the load balancer's target group forwards mlflow.<domain> to this port.
      port "http" {
        static = 5000
        to     = 5000
      }
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }

    service {
      provider = "nomad"
      name     = "crm-mlflow"
      port     = "http"

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "mlflow" {
      driver = "docker"

      config {
        image = var.image
        ports = ["http"]
      }

      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/crm-mlflow" }}{{ range $key, $value := . }}{{ $key }}={{ $value }}
          {{ end }}{{ end }}
        EOT
        destination = "secrets/crm.env"
        env         = true
      }

      env {
        # RDS refuses plain connections (rds.force_ssl); libpq reads the mode from here.
        PGSSLMODE = "require"
        # MLflow's DNS-rebinding guard: its own name, and the load balancer's health checks,
        # which come from inside the VPC with the node's address as Host.
        MLFLOW_SERVER_ALLOWED_HOSTS        = "mlflow.${var.domain},10.*,localhost"
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION = "false"
      }

      resources {
        cpu    = 1000
        memory = 2048
      }
    }
  }
}

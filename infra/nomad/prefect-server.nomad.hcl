# Prefect API server and UI on RDS (its own role and database). Runs from the worker image, so the
# server and the worker share one locked Prefect version. Its only secret, the database URL, is
# the Nomad variable nomad/jobs/crm-prefect-server (infra/nomad/sync-vars.sh).
#
#   nomad job run -var image=<account>.dkr.ecr.<region>.amazonaws.com/crm-prod/worker:<tag> \
#     -var domain=crm.example.com infra/nomad/prefect-server.nomad.hcl

variable "image" {
  type        = string
  description = "The worker image (infra/docker/app.Dockerfile, target worker), by immutable tag or digest."
}

variable "domain" {
  type        = string
  description = "The services' DNS zone: the UI calls its API at prefect.<domain>/api."
}

job "crm-prefect-server" {
  type = "service"

  # Otherwise Nomad's defaults: one allocation at a time, healthy once its checks pass for 10s,
  # within 5m, the whole deployment within 10m.
  update {
    auto_revert = true
  }

  group "server" {
    network {
      # Static: the load balancer's target group forwards prefect.<domain> to this port.
      port "http" {
        static = 4200
        to     = 4200
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
      name     = "crm-prefect-server"
      port     = "http"

      check {
        type     = "http"
        path     = "/api/health"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "prefect-server" {
      driver = "docker"

      config {
        image   = var.image
        ports   = ["http"]
        command = "prefect"
        args    = ["server", "start", "--host", "0.0.0.0", "--port", "4200"]
      }

      # PREFECT_API_DATABASE_CONNECTION_URL (postgresql+asyncpg://crm_prefect:...?ssl=require).
      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/crm-prefect-server" }}{{ range $key, $value := . }}{{ $key }}={{ $value }}
          {{ end }}{{ end }}
        EOT
        destination = "secrets/prefect.env"
        env         = true
      }

      env {
        PREFECT_UI_API_URL               = "https://prefect.${var.domain}/api"
        PREFECT_SERVER_ANALYTICS_ENABLED = "false"
      }

      resources {
        cpu    = 1000
        memory = 2048
      }
    }
  }
}

# The Streamlit explorer: reads the lake, MLflow and the scorer (CRM_SCORER_URL). Its
# environment is the prod profile, the Nomad variable nomad/jobs/crm-explorer
# (infra/nomad/sync-vars.sh).
#
#   nomad job run -var image=<account>.dkr.ecr.<region>.amazonaws.com/crm-prod/explorer:<tag> \
#     infra/nomad/explorer.nomad.hcl

variable "image" {
  type        = string
  description = "The explorer image (infra/docker/app.Dockerfile, target explorer), by immutable tag or digest."
}

job "crm-explorer" {
  type = "service"

  # Otherwise Nomad's defaults: one allocation at a time, healthy once its checks pass for 10s,
  # within 5m, the whole deployment within 10m.
  update {
    auto_revert = true
  }

  group "explorer" {
    network {
      # Static: the load balancer's target group forwards explorer.<domain> to this port.
      port "http" {
        static = 8501
        to     = 8501
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
      name     = "crm-explorer"
      port     = "http"

      check {
        type     = "http"
        path     = "/_stcore/health"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "explorer" {
      driver = "docker"

      config {
        image = var.image
        ports = ["http"]
      }

      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/crm-explorer" }}{{ range $key, $value := . }}{{ $key }}={{ $value }}
          {{ end }}{{ end }}
        EOT
        destination = "secrets/crm.env"
        env         = true
      }

      resources {
        cpu    = 500
        memory = 1024
      }
    }
  }
}

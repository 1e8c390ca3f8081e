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

  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "5m"
    progress_deadline = "10m"
    auto_revert       = true
  }

  group "explorer" {
    count = 1

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
        change_mode = "restart"
      }

      resources {
        cpu    = 500
        memory = 1024
      }
    }
  }
}

# The BentoML scorer on the champion model and the Feast online store (RDS). It answers
# /readyz only once both are loaded, which is also the load balancer's health check; scoring
# endpoints need CRM_API_TOKEN as a bearer token. Its environment is the prod profile, the Nomad
# variable nomad/jobs/crm-scorer (infra/nomad/sync-vars.sh).
#
#   nomad job run -var image=<account>.dkr.ecr.<region>.amazonaws.com/crm-prod/scorer:<tag> \
#     infra/nomad/scorer.nomad.hcl

variable "image" {
  type        = string
  description = "The scorer image (infra/docker/app.Dockerfile, target scorer), by immutable tag or digest."
}

variable "instances" {
  type        = number
  default     = 1
  description = "Instances; each takes the static port 3000 of its own node."
}

job "crm-scorer" {
  type = "service"

  # Otherwise Nomad's defaults: one allocation at a time, healthy once its checks pass for 10s.
  update {
    healthy_deadline  = "10m"
    progress_deadline = "15m"
    auto_revert       = true
  }

  group "scorer" {
    count = var.instances

    # The static port allows one instance per node.
    constraint {
      operator = "distinct_hosts"
      value    = "true"
    }

    network {
      # Static: the load balancer's target group forwards scorer.<domain> to this port.
      port "http" {
        static = 3000
        to     = 3000
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
      name     = "crm-scorer"
      port     = "http"

      # /livez: the process answers; readiness (/readyz) waits for a champion model, which a
      # fresh platform has only after the first training run.
      check {
        type     = "http"
        path     = "/livez"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "scorer" {
      driver = "docker"

      config {
        image = var.image
        ports = ["http"]
      }

      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/crm-scorer" }}{{ range $key, $value := . }}{{ $key }}={{ $value }}
          {{ end }}{{ end }}
        EOT
        destination = "secrets/crm.env"
        env         = true
      }

      resources {
        cpu    = 1000
        memory = 2048
      }
    }
  }
}

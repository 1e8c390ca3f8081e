# The Prefect process worker (`crm worker`): polls the work pool crm-process-pool and runs the
# pipeline's flows (land, validate, materialize, train) inside this container, from the code in
# the image (/app). The deployments it runs are registered by deploy.nomad.hcl (`crm deploy`).
# Its environment is the prod profile: the Nomad variable nomad/jobs/crm-prefect-worker holds
# every CRM_* setting, written from `terraform output` by infra/nomad/sync-vars.sh.
#
#   nomad job run -var image=<account>.dkr.ecr.<region>.amazonaws.com/crm-prod/worker:<tag> \
#     infra/nomad/prefect-worker.nomad.hcl

variable "image" {
  type        = string
  description = "The worker image (infra/docker/app.Dockerfile, target worker), by immutable tag or digest."
}

job "crm-prefect-worker" {
  type = "service"

  # No service, so no checks: healthy once running for 30s. Otherwise Nomad's defaults: one
  # allocation at a time, within 5m, the whole deployment within 10m.
  update {
    min_healthy_time = "30s"
    auto_revert      = true
  }

  group "worker" {
    restart {
      attempts = 3
      interval = "5m"
      delay    = "15s"
      mode     = "delay"
    }

    task "worker" {
      driver = "docker"

      config {
        image   = var.image
        command = "crm"
        args    = ["worker"]
      }

      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/crm-prefect-worker" }}{{ range $key, $value := . }}{{ $key }}={{ $value }}
          {{ end }}{{ end }}
        EOT
        destination = "secrets/crm.env"
        env         = true
      }

      # Training runs here: the largest task of the platform.
      resources {
        cpu    = 2000
        memory = 6144
      }
    }
  }
}

# One-shot: `crm deploy` registers prefect.yaml's deployments (daily land and materialise, weekly
# train, the crm-pipeline flow) and the process work pool with the Prefect server. It runs from the
# worker image, so the deployments' working directory (CRM_PROJECT_DIR, /app) is the code the
# worker runs. Run it after each new worker image. Its environment is the prod profile, the Nomad
# variable nomad/jobs/crm-deploy (infra/nomad/sync-vars.sh).
#
#   nomad job run -var image=<account>.dkr.ecr.<region>.amazonaws.com/crm-prod/worker:<tag> \
#     infra/nomad/deploy.nomad.hcl

variable "image" {
  type        = string
  description = "The worker image (infra/docker/app.Dockerfile, target worker), by immutable tag or digest."
}

job "crm-deploy" {
  type = "batch"

  group "deploy" {
    # The Prefect server may still be starting: a few tries, then the job fails visibly.
    restart {
      attempts = 3
      interval = "10m"
      delay    = "30s"
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "deploy" {
      driver = "docker"

      config {
        image   = var.image
        command = "crm"
        args    = ["deploy"]
      }

      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/crm-deploy" }}{{ range $key, $value := . }}{{ $key }}={{ $value }}
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

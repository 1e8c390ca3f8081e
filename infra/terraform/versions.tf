# The AWS side of the prod profile: network, S3 lake, RDS PostgreSQL, Secrets Manager, ECR, and
# the EC2 instances that run the Nomad cluster (the services themselves are Nomad jobs under
# infra/nomad/). docs/deploy.md walks through it; `terraform output` is exactly the CRM_* settings.
terraform {
  # 1.11: write-only arguments (`*_wo`) and ephemeral resources keep generated passwords out of
  # the state; the S3 backend's own lock file (no DynamoDB table).
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # Partial configuration: bucket, key and region come from envs/<env>.s3.tfbackend
  # (`terraform init -backend-config=envs/prod.s3.tfbackend`), so one code base serves every
  # environment, each with its own state object.
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}

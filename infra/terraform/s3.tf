# The data lake (CRM_LAKE_BUCKET) and MLflow's artifacts (CRM_MLFLOW_BUCKET): versioned,
# encrypted with the environment's key, no public access, TLS only, access logged. Bucket names
# are global, so they carry the account id. Each bucket is a modules/hardened_bucket; the checks
# that do not apply to one are skipped on its module call.

locals {
  data_buckets = {
    lake   = "${local.name}-${local.account_id}-data-lake"
    mlflow = "${local.name}-${local.account_id}-mlflow-artifacts"
  }
  logs_bucket = "${local.name}-${local.account_id}-access-logs"
}

module "data_bucket" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice per organisation; versioning and RDS backups cover mistakes, and the lake can be re-landed from its sources.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events: the pipeline is scheduled by Prefect, not triggered by uploads.
  source   = "./modules/hardened_bucket"
  for_each = local.data_buckets

  name           = each.value
  sse_algorithm  = "aws:kms"
  kms_key_arn    = aws_kms_key.main.arn
  access_log     = { bucket = local.logs_bucket, prefix = "s3/${each.key}/" }
  lifecycle_rule = { id = "old-versions-and-uploads", noncurrent_version_days = 90 }

  # S3 accepts a logging target only once it exists: the access-log bucket comes first. By name
  # and depends_on rather than module.logs_bucket.bucket, because checkov renders none of a
  # for_each module call's inputs once one reads another module's output.
  depends_on = [module.logs_bucket]
}

# --- Access logs (S3 server access logs and the load balancer's) ------------------------------
module "logs_bucket" {
  #checkov:skip=CKV_AWS_18:This is the access-log bucket; logging it into itself would loop.
  #checkov:skip=CKV_AWS_144:Access logs are not replicated across regions; they expire after a year.
  #checkov:skip=CKV2_AWS_62:Nothing consumes access-log events.
  #checkov:skip=CKV_AWS_145:Load balancer access logs support only SSE-S3 (AES256), not KMS keys.
  source = "./modules/hardened_bucket"

  name           = local.logs_bucket
  sse_algorithm  = "AES256"
  access_log     = null
  lifecycle_rule = { id = "expire", expiration_days = 365, noncurrent_version_days = 30 }

  put_object_grants = [
    {
      sid            = "S3ServerAccessLogs"
      principal_type = "Service"
      principal      = "logging.s3.amazonaws.com"
      prefix         = "s3/*"
      source_account = local.account_id
    },
    # Regions opened before August 2022 deliver load balancer logs from an AWS account per region.
    {
      sid            = "LoadBalancerAccessLogs"
      principal_type = "AWS"
      principal      = data.aws_elb_service_account.main.arn
      prefix         = "alb/AWSLogs/${local.account_id}/*"
    },
  ]
}

data "aws_elb_service_account" "main" {}

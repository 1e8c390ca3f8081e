# One customer-managed key for the environment's data at rest: the S3 lake and artifacts, RDS
# (storage, Performance Insights, its master secret), Secrets Manager, ECR and CloudWatch Logs.
resource "aws_kms_key" "main" {
  description             = "${local.name}: data at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.name}"
  target_key_id = aws_kms_key.main.key_id
}

data "aws_iam_policy_document" "kms" {
  # The account administers the key and IAM policies grant its use (the application's and
  # MLflow's users get Encrypt/Decrypt through their group policies, iam.tf).
  #checkov:skip=CKV_AWS_109:A key policy's "*" resource is the key itself; administration is limited to the account's IAM.
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource is the key itself; writes are limited to the account's IAM.
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource is the key itself.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts the environment's log groups (VPC flow logs, RDS logs).
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:*"]
    }
  }
}

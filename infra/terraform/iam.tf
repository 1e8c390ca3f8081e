# Who may do what. The prod profile reads static S3 keys (CRM_S3_ACCESS_KEY_ID and
# CRM_S3_SECRET_ACCESS_KEY are required, infra/settings.py), so the application and the MLflow
# server each get an IAM user whose group allows its own buckets and nothing else. The Nomad
# nodes have an instance role for what the host itself does (join the cluster, pull images, read
# the gossip key, SSM sessions); containers cannot reach it (metadata hop limit 1, nomad.tf).

# --- The application: the lake and MLflow's artifacts ----------------------------------------
resource "aws_iam_group" "app" {
  name = "${local.name}-app"
}

resource "aws_iam_group_policy" "app" {
  name   = "lake-and-artifacts"
  group  = aws_iam_group.app.name
  policy = data.aws_iam_policy_document.buckets["app"].json
}

resource "aws_iam_user" "app" {
  #checkov:skip=CKV_AWS_273:The prod profile requires static S3 keys (CRM_S3_*); the user is a workload identity with no console access, limited by its group to two buckets.
  name = "${local.name}-app"
}

resource "aws_iam_user_group_membership" "app" {
  user   = aws_iam_user.app.name
  groups = [aws_iam_group.app.name]
}

resource "aws_iam_access_key" "app" {
  user = aws_iam_user.app.name
}

# --- The MLflow server: its artifacts bucket only --------------------------------------------
resource "aws_iam_group" "mlflow" {
  name = "${local.name}-mlflow"
}

resource "aws_iam_group_policy" "mlflow" {
  name   = "artifacts"
  group  = aws_iam_group.mlflow.name
  policy = data.aws_iam_policy_document.buckets["mlflow"].json
}

resource "aws_iam_user" "mlflow" {
  #checkov:skip=CKV_AWS_273:The MLflow server's artifact proxy takes static keys (infra/docker/mlflow_server.py); a workload identity with no console access, limited to one bucket.
  name = "${local.name}-mlflow"
}

resource "aws_iam_user_group_membership" "mlflow" {
  user   = aws_iam_user.mlflow.name
  groups = [aws_iam_group.mlflow.name]
}

resource "aws_iam_access_key" "mlflow" {
  user = aws_iam_user.mlflow.name
}

locals {
  bucket_access = {
    app    = [aws_s3_bucket.data["lake"].arn, aws_s3_bucket.data["mlflow"].arn]
    mlflow = [aws_s3_bucket.data["mlflow"].arn]
  }
}

data "aws_iam_policy_document" "buckets" {
  for_each = local.bucket_access

  statement {
    sid       = "ListOwnBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = each.value
  }

  statement {
    sid       = "ReadWriteObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [for arn in each.value : "${arn}/*"]
  }

  statement {
    sid       = "UseTheBucketsKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }
}

# --- The Nomad nodes ------------------------------------------------------------------------
resource "aws_iam_role" "nodes" {
  name               = "${local.name}-nomad-node"
  assume_role_policy = data.aws_iam_policy_document.nodes_assume.json
}

data "aws_iam_policy_document" "nodes_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_instance_profile" "nodes" {
  name = "${local.name}-nomad-node"
  role = aws_iam_role.nodes.name
}

# Session Manager: shells and port forwarding to the Nomad API without SSH or an open port.
resource "aws_iam_role_policy_attachment" "nodes_ssm" {
  role       = aws_iam_role.nodes.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy" "nodes" {
  name   = "nomad-node"
  role   = aws_iam_role.nodes.id
  policy = data.aws_iam_policy_document.nodes.json
}

data "aws_iam_policy_document" "nodes" {
  # Cloud auto-join: the servers find each other by their tag. Describe calls take no resource.
  statement {
    sid       = "AutoJoin"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
  }

  statement {
    sid       = "GossipKey"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.main["nomad/gossip-key"].arn]
  }

  statement {
    sid       = "DecryptGossipKey"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.region}.amazonaws.com"]
    }
  }

  # The Docker driver pulls the project's images with the ECR credential helper.
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "EcrPull"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = [for repository in aws_ecr_repository.images : repository.arn]
  }

  statement {
    sid       = "EcrDecryptLayers"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ecr.${var.region}.amazonaws.com"]
    }
  }
}

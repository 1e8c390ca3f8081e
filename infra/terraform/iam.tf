# Who may do what. The prod profile reads static S3 keys (CRM_S3_ACCESS_KEY_ID and
# CRM_S3_SECRET_ACCESS_KEY are required, infra/settings.py), so the application and the MLflow
# server each get an IAM user whose group allows its own buckets and nothing else. The Nomad
# nodes have an instance role for what the host itself does (join the cluster, pull images, read
# the gossip key, SSM sessions); containers cannot reach it (metadata hop limit 1, nomad.tf).

# --- Workload users: the application (lake and artifacts) and the MLflow server (artifacts) ----
locals {
  workload_users = {
    app    = { policy = "lake-and-artifacts", buckets = ["lake", "mlflow"] }
    mlflow = { policy = "artifacts", buckets = ["mlflow"] }
  }
}

resource "aws_iam_group" "workload" {
  for_each = local.workload_users
  name     = "${local.name}-${each.key}"
}

resource "aws_iam_group_policy" "workload" {
  for_each = local.workload_users
  name     = each.value.policy
  group    = aws_iam_group.workload[each.key].name
  policy   = data.aws_iam_policy_document.buckets[each.key].json
}

resource "aws_iam_user" "workload" {
  #checkov:skip=CKV_AWS_273:The prod profile (CRM_S3_*) and the MLflow server's artifact proxy (infra/docker/mlflow_server.py) take static S3 keys; each user is a workload identity with no console access, limited by its group to its own buckets.
  for_each = local.workload_users
  name     = "${local.name}-${each.key}"
}

resource "aws_iam_user_group_membership" "workload" {
  for_each = local.workload_users
  user     = aws_iam_user.workload[each.key].name
  groups   = [aws_iam_group.workload[each.key].name]
}

resource "aws_iam_access_key" "workload" {
  for_each = local.workload_users
  user     = aws_iam_user.workload[each.key].name
}

data "aws_iam_policy_document" "buckets" {
  for_each = local.workload_users

  statement {
    sid       = "ListOwnBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [for bucket in each.value.buckets : module.data_bucket[bucket].arn]
  }

  statement {
    sid       = "ReadWriteObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [for bucket in each.value.buckets : "${module.data_bucket[bucket].arn}/*"]
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
module "nodes_role" {
  source  = "./modules/service_role"
  name    = "${local.name}-nomad-node"
  service = "ec2.amazonaws.com"
}

resource "aws_iam_instance_profile" "nodes" {
  name = "${local.name}-nomad-node"
  role = module.nodes_role.name
}

# Session Manager: shells and port forwarding to the Nomad API without SSH or an open port.
resource "aws_iam_role_policy_attachment" "nodes_ssm" {
  role       = module.nodes_role.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy" "nodes" {
  name   = "nomad-node"
  role   = module.nodes_role.name
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

  # The environment's key, only as Secrets Manager (the gossip key) and ECR (image layers) use it.
  statement {
    sid       = "DecryptGossipKeyAndLayers"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "secretsmanager.${var.region}.amazonaws.com",
        "ecr.${var.region}.amazonaws.com",
      ]
    }
  }
}

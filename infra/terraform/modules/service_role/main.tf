# An IAM role that one AWS service assumes, and its trust policy: the flow logs' writer, RDS's
# enhanced monitoring and the Nomad nodes' instance role are each one of these. The caller
# attaches what the role may do.

resource "aws_iam_role" "this" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = [var.service]
    }

    dynamic "condition" {
      for_each = var.source_account[*]

      content {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [condition.value]
      }
    }
  }
}

# The Nomad cluster: an auto-scaling group of Ubuntu instances in the private subnets, each a
# Nomad server and client with Docker. The servers find each other by tag (cloud auto-join),
# encrypt their gossip with a key from Secrets Manager, and enforce ACLs (bootstrapped once,
# docs/deploy.md). The services (infra/nomad/*.nomad.hcl) run on them with static ports that the
# internal load balancer forwards to.

# Canonical's current Ubuntu 24.04 image for this region, as Canonical publishes it to SSM.
data "aws_ssm_parameter" "ubuntu" {
  name = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
}

resource "aws_launch_template" "nodes" {
  name_prefix            = "${local.name}-nomad-"
  image_id               = data.aws_ssm_parameter.ubuntu.insecure_value
  instance_type          = var.nomad_instance_type
  update_default_version = true
  ebs_optimized          = true
  vpc_security_group_ids = [aws_security_group.nodes.id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.nodes.arn
  }

  # IMDSv2 only, and one hop: the host reaches its role, containers (one hop further) do not.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/sda1"

    ebs {
      volume_size           = var.nomad_volume_size
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  user_data = base64encode(templatefile("${path.module}/templates/nomad-node.sh.tftpl", {
    cluster           = local.name
    region            = var.region
    node_count        = var.nomad_node_count
    nomad_version     = var.nomad_version
    gossip_secret_arn = aws_secretsmanager_secret.main["nomad/gossip-key"].arn
  }))

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${local.name}-nomad" })
  }
}

resource "aws_autoscaling_group" "nodes" {
  name                      = "${local.name}-nomad"
  min_size                  = var.nomad_node_count
  max_size                  = var.nomad_node_count
  desired_capacity          = var.nomad_node_count
  vpc_zone_identifier       = local.subnet_ids.private
  health_check_type         = "EC2"
  health_check_grace_period = 300
  target_group_arns         = [for group in aws_lb_target_group.services : group.arn]

  launch_template {
    id      = aws_launch_template.nodes.id
    version = aws_launch_template.nodes.latest_version
  }

  # The environment's tags, the instances' Name, and the tag cloud auto-join looks for
  # (templates/nomad-node.sh.tftpl).
  dynamic "tag" {
    for_each = merge(local.tags, { Name = "${local.name}-nomad", nomad-cluster = local.name })

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # The secret must hold its value before the first node boots and reads it.
  depends_on = [aws_secretsmanager_secret_version.gossip, aws_nat_gateway.main]
}

# Three subnet tiers per zone: public (NAT gateways only), private (Nomad nodes and the internal
# load balancer; out through NAT) and database (RDS; no route out at all). Nothing the project
# runs has a public address.

resource "aws_vpc" "main" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = { Name = local.name }
}

# The default security group of a VPC allows all traffic between its members: emptied, so
# everything must use one of the groups below.
resource "aws_default_security_group" "main" {
  vpc_id = aws_vpc.main.id
}

resource "aws_internet_gateway" "main" {
  vpc_id = aws_vpc.main.id
  tags   = { Name = local.name }
}

# Each tier takes a /20 per zone from its own block of four: public 0-3, private 4-7, database 8-11.
# Private subnets each have their zone's route table (out through a NAT gateway); the public and
# database tiers share one table per tier.
locals {
  subnet_tiers = { public = 0, private = 4, database = 8 }

  subnets = merge([
    for tier, offset in local.subnet_tiers : {
      for index, az in local.azs : "${tier}-${az}" => {
        tier        = tier
        az          = az
        cidr        = cidrsubnet(var.vpc_cidr, 4, offset + index)
        route_table = tier == "private" ? "${tier}-${az}" : tier
      }
    }
  ]...)

  # Each tier's subnet ids, in the order of the zones.
  subnet_ids = {
    for tier in keys(local.subnet_tiers) :
    tier => [for az in local.azs : aws_subnet.main["${tier}-${az}"].id]
  }
}

resource "aws_subnet" "main" {
  for_each                = local.subnets
  vpc_id                  = aws_vpc.main.id
  availability_zone       = each.value.az
  cidr_block              = each.value.cidr
  map_public_ip_on_launch = false

  tags = { Name = "${local.name}-${each.key}", Tier = each.value.tier }
}

resource "aws_eip" "nat" {
  count  = local.nat_count
  domain = "vpc"
  tags   = { Name = "${local.name}-nat-${count.index}" }

  depends_on = [aws_internet_gateway.main]
}

resource "aws_nat_gateway" "main" {
  count         = local.nat_count
  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = local.subnet_ids.public[count.index]
  tags          = { Name = "${local.name}-${count.index}" }
}

# The public table routes to the internet gateway, each private one to its NAT gateway; the
# database tier's table has only the VPC's local route.
resource "aws_route_table" "main" {
  for_each = toset([for subnet in local.subnets : subnet.route_table])
  vpc_id   = aws_vpc.main.id
  tags     = { Name = "${local.name}-${each.key}" }
}

resource "aws_route_table_association" "main" {
  for_each       = local.subnets
  subnet_id      = aws_subnet.main[each.key].id
  route_table_id = aws_route_table.main[each.value.route_table].id
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.main["public"].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.main.id
}

resource "aws_route" "private_nat" {
  count                  = length(local.azs)
  route_table_id         = aws_route_table.main["private-${local.azs[count.index]}"].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.main[var.single_nat_gateway ? 0 : count.index].id
}

# S3 traffic (the lake, artifacts, ECR layers) stays on AWS's network and skips the NAT bill.
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.main.id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [for az in local.azs : aws_route_table.main["private-${az}"].id]
  tags              = { Name = "${local.name}-s3" }
}

# --- Flow logs ------------------------------------------------------------------------------
resource "aws_cloudwatch_log_group" "flow_logs" {
  name              = "/${local.name}/vpc-flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_flow_log" "main" {
  vpc_id          = aws_vpc.main.id
  traffic_type    = "ALL"
  log_destination = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn    = module.flow_logs_role.arn
}

module "flow_logs_role" {
  source         = "./modules/service_role"
  name           = "${local.name}-flow-logs"
  service        = "vpc-flow-logs.amazonaws.com"
  source_account = local.account_id
}

resource "aws_iam_role_policy" "flow_logs" {
  name   = "write-flow-logs"
  role   = module.flow_logs_role.name
  policy = data.aws_iam_policy_document.flow_logs.json
}

data "aws_iam_policy_document" "flow_logs" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow_logs.arn}:*"]
  }
}

# --- Security groups ------------------------------------------------------------------------
resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "Internal load balancer: HTTPS from the VPC and the operators' networks"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = toset(concat([var.vpc_cidr], var.operator_cidrs))
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_security_group" "nodes" {
  name        = "${local.name}-nomad-nodes"
  description = "Nomad nodes: the services' ports from the load balancer, Nomad between nodes"
  vpc_id      = aws_vpc.main.id
}

# HTTPS out: AWS APIs (S3, ECR, Secrets Manager, SSM), the services' own names through the load
# balancer, and package and image registries at boot; HTTP for the distribution's apt mirrors.
resource "aws_vpc_security_group_egress_rule" "nodes_web" {
  for_each          = toset(["80", "443"])
  security_group_id = aws_security_group.nodes.id
  description       = "Port ${each.value} out through NAT"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.value)
  to_port           = tonumber(each.value)
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_security_group" "db" {
  name        = "${local.name}-postgres"
  description = "RDS PostgreSQL: 5432 from the Nomad nodes only"
  vpc_id      = aws_vpc.main.id
}

# Traffic between the groups is allowed at both ends: an egress rule on the source group and an
# ingress rule on the destination group. Nomad's HTTP API (4646), RPC (4647) and Serf gossip (4648
# TCP and UDP) run between nodes only; operators reach the API through an SSM port-forwarding
# session, never a public port.
locals {
  security_groups = {
    alb   = aws_security_group.alb.id
    nodes = aws_security_group.nodes.id
    db    = aws_security_group.db.id
  }

  group_flows = merge(
    {
      for service, config in local.services : "alb-to-nodes-${service}" => {
        from     = "alb"
        to       = "nodes"
        protocol = "tcp"
        ports    = [config.port, config.port]
        egress   = "${service} on the Nomad nodes"
        ingress  = "${service} from the load balancer"
      }
    },
    {
      for protocol in ["tcp", "udp"] : "nomad-${protocol}" => {
        from     = "nodes"
        to       = "nodes"
        protocol = protocol
        # 4646-4648 over TCP, and Serf gossip (4648) over UDP too.
        ports   = [protocol == "tcp" ? 4646 : 4648, 4648]
        egress  = "Nomad ${protocol} between nodes"
        ingress = "Nomad ${protocol} between nodes"
      }
    },
    {
      postgres = {
        from     = "nodes"
        to       = "db"
        protocol = "tcp"
        ports    = [5432, 5432]
        egress   = "PostgreSQL on RDS"
        ingress  = "PostgreSQL from the Nomad nodes"
      }
    },
  )
}

resource "aws_vpc_security_group_egress_rule" "flows" {
  for_each                     = local.group_flows
  security_group_id            = local.security_groups[each.value.from]
  description                  = each.value.egress
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.ports[0]
  to_port                      = each.value.ports[1]
  referenced_security_group_id = local.security_groups[each.value.to]
}

resource "aws_vpc_security_group_ingress_rule" "flows" {
  for_each                     = local.group_flows
  security_group_id            = local.security_groups[each.value.to]
  description                  = each.value.ingress
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.ports[0]
  to_port                      = each.value.ports[1]
  referenced_security_group_id = local.security_groups[each.value.from]
}

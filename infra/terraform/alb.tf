# One internal HTTPS load balancer in front of the services, routed by host name:
# mlflow.<domain>, prefect.<domain>, scorer.<domain>, explorer.<domain> (a private hosted zone,
# resolvable inside the VPC and through a VPN that uses its resolver). TLS ends here with the
# ACM certificate; targets are the Nomad nodes' static ports inside the private subnets.

resource "aws_lb" "main" {
  #checkov:skip=CKV2_AWS_28:Internal load balancer with no route from the internet; a WAF guards public entry points.
  name                       = local.name
  internal                   = true
  load_balancer_type         = "application"
  subnets                    = local.subnet_ids.private
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection

  access_logs {
    bucket  = module.logs_bucket.bucket
    prefix  = "alb"
    enabled = true
  }

  # The bucket's policy must admit the load balancer's log delivery first.
  depends_on = [module.logs_bucket]
}

resource "aws_lb_target_group" "services" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; the hop to the targets stays inside the private subnets, between two security groups.
  for_each             = local.services
  name                 = "${local.name}-${each.key}"
  port                 = each.value.port
  protocol             = "HTTP"
  vpc_id               = aws_vpc.main.id
  target_type          = "instance"
  deregistration_delay = 30

  health_check {
    path                = each.value.health
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.main.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "text/plain"
      message_body = "Unknown host: use mlflow., prefect., scorer. or explorer.${var.domain_name}"
      status_code  = "404"
    }
  }
}

resource "aws_lb_listener_rule" "services" {
  for_each     = local.services
  listener_arn = aws_lb_listener.https.arn
  priority     = 100 + index(keys(local.services), each.key)

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.services[each.key].arn
  }

  condition {
    host_header {
      values = ["${each.key}.${var.domain_name}"]
    }
  }
}

# --- Names ----------------------------------------------------------------------------------
resource "aws_route53_zone" "private" {
  #checkov:skip=CKV2_AWS_38:DNSSEC signing applies to public hosted zones; this zone is private to the VPC.
  #checkov:skip=CKV2_AWS_39:Query logging of a private zone needs Route 53 Resolver query logging, outside this stack; the flow logs record the traffic.
  name    = var.domain_name
  comment = "${local.name}: the services behind the internal load balancer"

  vpc {
    vpc_id = aws_vpc.main.id
  }
}

resource "aws_route53_record" "services" {
  for_each = local.services
  zone_id  = aws_route53_zone.private.zone_id
  name     = "${each.key}.${var.domain_name}"
  type     = "A"

  alias {
    name                   = aws_lb.main.dns_name
    zone_id                = aws_lb.main.zone_id
    evaluate_target_health = true
  }
}

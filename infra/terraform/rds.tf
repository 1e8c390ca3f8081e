# One RDS PostgreSQL instance for the four databases (Feast online store, Feast registry, MLflow,
# Prefect). RDS creates one master user, whose password RDS itself generates and keeps in Secrets
# Manager (never in the Terraform state); the per-service roles and databases are created inside
# the VPC by the bootstrap job infra/nomad/db-bootstrap.nomad.hcl (docs/deploy.md says why not
# the postgresql provider).

resource "aws_db_subnet_group" "main" {
  name       = local.name
  subnet_ids = local.subnet_ids.database
}

resource "aws_db_parameter_group" "main" {
  name   = "${local.name}-postgres${var.db_engine_version}"
  family = "postgres${var.db_engine_version}"

  dynamic "parameter" {
    for_each = [
      # TLS only: the prod profile connects with sslmode=require (infra/settings.py).
      { name = "rds.force_ssl", value = "1" },
      # Schema changes and slow statements in the log (CloudWatch below), not every query.
      { name = "log_statement", value = "ddl" },
      { name = "log_min_duration_statement", value = "1000" },
      { name = "log_connections", value = "1" },
      { name = "log_disconnections", value = "1" },
    ]

    content {
      name  = parameter.value.name
      value = parameter.value.value
    }
  }

  lifecycle {
    create_before_destroy = true
  }
}

# Created before the instance so that they are encrypted and expire (RDS would create them
# unencrypted and kept forever).
resource "aws_cloudwatch_log_group" "postgres" {
  for_each          = toset(["postgresql", "upgrade"])
  name              = "/aws/rds/instance/${local.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_db_instance" "main" {
  #checkov:skip=CKV_AWS_157:Multi-AZ is per environment (var.db_multi_az): on in prod.tfvars, off in staging to halve its cost; tests/unit/test_infra_hcl.py keeps it on in prod.
  identifier     = local.name
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.main.arn

  db_name                       = "postgres"
  username                      = local.pg_master_user
  manage_master_user_password   = true
  master_user_secret_kms_key_id = aws_kms_key.main.arn

  db_subnet_group_name   = aws_db_subnet_group.main.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false
  multi_az               = var.db_multi_az
  parameter_group_name   = aws_db_parameter_group.main.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  # Roles authenticate with passwords today; IAM authentication is on so that a service can move
  # to short-lived tokens without a change here.
  iam_database_authentication_enabled = true

  backup_retention_period    = var.db_backup_retention_days
  backup_window              = "03:00-04:00"
  maintenance_window         = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot      = true
  delete_automated_backups   = false
  deletion_protection        = var.deletion_protection
  skip_final_snapshot        = false
  final_snapshot_identifier  = "${local.name}-final"
  auto_minor_version_upgrade = true
  apply_immediately          = false

  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.main.arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = module.rds_monitoring_role.arn

  depends_on = [aws_cloudwatch_log_group.postgres]
}

module "rds_monitoring_role" {
  source  = "./modules/service_role"
  name    = "${local.name}-rds-monitoring"
  service = "monitoring.rds.amazonaws.com"
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = module.rds_monitoring_role.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# terraform plan -var-file=envs/prod.tfvars (after init with envs/prod.s3.tfbackend).
environment        = "prod"
region             = "eu-west-1"
availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
vpc_cidr           = "10.40.0.0/16"
domain_name        = "crm.example.com"
certificate_arn    = "arn:aws:acm:eu-west-1:111111111111:certificate/00000000-0000-0000-0000-000000000000"

# Operators' VPN range, allowed to reach the services' HTTPS names.
operator_cidrs = []

single_nat_gateway       = false
db_instance_class        = "db.m7g.large"
db_allocated_storage     = 100
db_max_allocated_storage = 500
db_multi_az              = true
db_backup_retention_days = 30

nomad_node_count    = 3
nomad_instance_type = "m7i.xlarge"

log_retention_days   = 365
secret_recovery_days = 30

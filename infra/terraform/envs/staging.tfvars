# terraform plan -var-file=envs/staging.tfvars (after init with envs/staging.s3.tfbackend).
# A smaller, cheaper copy of prod: one NAT gateway, one database zone, one Nomad node.
environment        = "staging"
region             = "eu-west-1"
availability_zones = ["eu-west-1a", "eu-west-1b"]
vpc_cidr           = "10.41.0.0/16"
domain_name        = "staging.crm.example.com"
certificate_arn    = "arn:aws:acm:eu-west-1:111111111111:certificate/00000000-0000-0000-0000-000000000000"

single_nat_gateway       = true
db_instance_class        = "db.t4g.medium"
db_allocated_storage     = 20
db_max_allocated_storage = 50
db_multi_az              = false
db_backup_retention_days = 7

nomad_node_count    = 1
nomad_instance_type = "m7i.large"

log_retention_days   = 365
secret_recovery_days = 7

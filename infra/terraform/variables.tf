# Per-environment values live in envs/<env>.tfvars; defaults here are the production-safe ones.

variable "environment" {
  description = "Environment name, part of every resource name (crm-<environment>-...)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be 2-16 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "region" {
  description = "AWS region of every resource (CRM_S3_REGION)."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC; /16 leaves room for three subnet tiers per zone."
  type        = string
  default     = "10.40.0.0/16"
}

variable "availability_zones" {
  description = "Zones to spread the subnets over, named so that the set never grows by itself (RDS needs 2)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "availability_zones must name 2 or 3 zones of the region."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all zones (cheaper; outbound traffic stops if its zone does)."
  type        = bool
  default     = false
}

variable "operator_cidrs" {
  description = "Extra CIDRs (VPN, office) allowed to reach the internal load balancer on 443."
  type        = list(string)
  default     = []
}

variable "domain_name" {
  description = "DNS zone of the services: mlflow.<domain>, prefect.<domain>, scorer.<domain>, explorer.<domain>."
  type        = string
}

variable "certificate_arn" {
  description = "ACM certificate covering *.<domain_name>, for the load balancer's HTTPS listener."
  type        = string
}

variable "db_engine_version" {
  description = "RDS PostgreSQL major version (minor versions upgrade in the maintenance window)."
  type        = string
  default     = "16"
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage" {
  description = "Initial RDS storage, GiB."
  type        = number
  default     = 50
}

variable "db_max_allocated_storage" {
  description = "Ceiling for RDS storage autoscaling, GiB."
  type        = number
  default     = 200
}

variable "db_multi_az" {
  description = "A standby replica in a second zone (automatic failover)."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated RDS backups (point-in-time recovery window)."
  type        = number
  default     = 14
}

variable "deletion_protection" {
  description = "Refuse to delete the database and the load balancer (turn off only to destroy an environment)."
  type        = bool
  default     = true
}

variable "nomad_version" {
  description = "Nomad release installed on the nodes from HashiCorp's apt repository."
  type        = string
  default     = "1.10.5"
}

variable "nomad_node_count" {
  description = "Nomad nodes; each is a server and a client, so 3 keeps a quorum through one failure."
  type        = number
  default     = 3

  validation {
    condition     = contains([1, 3, 5], var.nomad_node_count)
    error_message = "nomad_node_count must be 1, 3 or 5 (a Raft quorum)."
  }
}

variable "nomad_instance_type" {
  description = "EC2 instance type of the Nomad nodes (the scorer, training and the servers share them)."
  type        = string
  default     = "m7i.xlarge"
}

variable "nomad_volume_size" {
  description = "Root volume of each Nomad node, GiB (images and allocation data)."
  type        = number
  default     = 60
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (VPC flow logs, RDS)."
  type        = number
  default     = 365
}

variable "secret_recovery_days" {
  description = "Days a deleted secret can still be restored."
  type        = number
  default     = 30
}

variable "secret_version" {
  description = "Bump to generate and store new passwords and tokens (then re-run the database bootstrap and the Nomad variables sync)."
  type        = number
  default     = 1
}

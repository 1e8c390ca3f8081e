variable "name" {
  description = "The bucket's name (global: the caller puts the account id in it)."
  type        = string
}

variable "sse_algorithm" {
  description = "Default encryption: aws:kms (with kms_key_arn and a bucket key), or AES256 (SSE-S3)."
  type        = string

  validation {
    condition     = contains(["aws:kms", "AES256"], var.sse_algorithm)
    error_message = "sse_algorithm must be aws:kms or AES256."
  }
}

variable "kms_key_arn" {
  description = "The KMS key of aws:kms encryption; null with AES256."
  type        = string
  default     = null

  validation {
    condition     = (var.kms_key_arn != null) == (var.sse_algorithm == "aws:kms")
    error_message = "kms_key_arn goes with sse_algorithm = aws:kms, and only with it."
  }
}

variable "access_log" {
  description = "Where this bucket's S3 server access logs go; null for none (the access-log bucket's own)."
  type = object({
    bucket = string
    prefix = string
  })
}

variable "lifecycle_rule" {
  description = "The lifecycle rule: its id, days to keep objects (null: forever) and old versions."
  type = object({
    id                      = string
    expiration_days         = optional(number)
    noncurrent_version_days = number
  })
}

variable "put_object_grants" {
  description = "Log deliveries allowed to put objects under a prefix (bucket policy statements)."
  type = list(object({
    sid            = string
    principal_type = string
    principal      = string
    prefix         = string
    source_account = optional(string)
  }))
  default = []
}

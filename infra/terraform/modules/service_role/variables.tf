variable "name" {
  description = "The role's name."
  type        = string
}

variable "service" {
  description = "The AWS service principal that assumes the role, e.g. ec2.amazonaws.com."
  type        = string
}

variable "source_account" {
  description = "Only on behalf of this account (aws:SourceAccount: no confused deputy); null: any."
  type        = string
  default     = null
}

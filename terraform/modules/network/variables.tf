variable "name_prefix" {
  description = "Prefix of every name in this module, e.g. `stepspot-dev`."
  type        = string
}

variable "create_vpc" {
  description = "Create a minimal VPC (private subnets, one NAT gateway, S3/DynamoDB endpoints) instead of using an existing one."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "Existing VPC for the Batch instances (used when create_vpc is false)."
  type        = string
  default     = null

  validation {
    condition     = var.create_vpc || var.vpc_id != null
    error_message = "Set vpc_id (an existing VPC) or create_vpc = true."
  }
}

variable "subnet_ids" {
  description = "Existing private subnets with outbound internet access (used when create_vpc is false)."
  type        = list(string)
  default     = []

  validation {
    condition     = var.create_vpc || length(var.subnet_ids) > 0
    error_message = "Set subnet_ids (private subnets of vpc_id) or create_vpc = true."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the created VPC."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR block such as 10.42.0.0/16."
  }
}

variable "availability_zones" {
  description = "Availability zones of the created VPC's private subnets (more zones = more Spot pools)."
  type        = list(string)
  default     = []

  validation {
    condition     = !var.create_vpc || length(var.availability_zones) >= 1
    error_message = "create_vpc needs at least one availability zone."
  }
}

variable "flow_log_retention_days" {
  description = "Retention of the created VPC's flow logs."
  type        = number
  default     = 30
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the flow log group."
  type        = string
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}

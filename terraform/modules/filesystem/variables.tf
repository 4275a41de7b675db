variable "name_prefix" {
  description = "Prefix of every name in this module, e.g. `stepspot-dev`."
  type        = string
}

variable "efs_enabled" {
  description = "Create the shared EFS file system (encrypted, one mount target per subnet, one access point)."
  type        = bool
  default     = false
}

variable "fsx_lustre_enabled" {
  description = "Create an FSx for Lustre scratch file system linked to the bucket (import from `fsx_import_prefix`)."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "VPC of the Batch instances."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the Batch instances: one EFS mount target in each; FSx uses the first."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids needs at least one subnet."
  }
}

variable "client_security_group_id" {
  description = "Security group of the Batch instances: the only source allowed to reach the file systems."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the EFS file system at rest."
  type        = string
}

variable "posix_uid" {
  description = "POSIX user id the access point gives every job (files on the shared file system belong to it)."
  type        = number
  default     = 1000
}

variable "posix_gid" {
  description = "POSIX group id the access point gives every job."
  type        = number
  default     = 1000
}

variable "efs_throughput_mode" {
  description = "EFS throughput mode: `elastic` (pay per use, bursts to GiB/s) or `bursting`."
  type        = string
  default     = "elastic"

  validation {
    condition     = contains(["elastic", "bursting"], var.efs_throughput_mode)
    error_message = "efs_throughput_mode must be elastic or bursting."
  }
}

variable "bucket_name" {
  description = "Bucket the FSx for Lustre file system imports from (when fsx_lustre_enabled)."
  type        = string
  default     = null
}

variable "fsx_import_prefix" {
  description = "Prefix of the bucket the FSx file system imports lazily (published task outputs by default)."
  type        = string
  default     = "runs/"
}

variable "fsx_storage_capacity_gib" {
  description = "FSx for Lustre SCRATCH_2 capacity: 1200, 2400 or a multiple of 2400 GiB."
  type        = number
  default     = 1200

  validation {
    condition     = var.fsx_storage_capacity_gib == 1200 || (var.fsx_storage_capacity_gib >= 2400 && var.fsx_storage_capacity_gib % 2400 == 0)
    error_message = "fsx_storage_capacity_gib must be 1200, 2400 or a multiple of 2400 (SCRATCH_2)."
  }
}

variable "tags" {
  description = "Tags for the module's resources."
  type        = map(string)
  default     = {}
}

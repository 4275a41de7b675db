variable "name_prefix" {
  description = "Prefix of every name in this module, e.g. `stepspot-dev`."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,40}$", var.name_prefix))
    error_message = "name_prefix must be 3-41 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "bucket_name" {
  description = "Name of the data/checkpoint bucket; null derives `<name_prefix>-<account id>-<region>`."
  type        = string
  default     = null
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete a non-empty bucket (dev only: checkpoints are lost)."
  type        = bool
  default     = false
}

variable "checkpoint_retention_days" {
  description = "Days after which checkpoint objects expire (the checkpoint manager also prunes older sequences)."
  type        = number
  default     = 30

  validation {
    condition     = var.checkpoint_retention_days >= 1 && var.checkpoint_retention_days <= 3650
    error_message = "checkpoint_retention_days must be between 1 and 3650."
  }
}

variable "checkpoint_transition_days" {
  description = "Days after which checkpoints move to `checkpoint_cold_storage_class`; below the retention, and at least 30 for STANDARD_IA and ONEZONE_IA (S3 refuses less)."
  type        = number
  default     = 7

  validation {
    condition     = var.checkpoint_transition_days >= 1
    error_message = "checkpoint_transition_days must be at least 1."
  }
}

variable "checkpoint_cold_storage_class" {
  description = "Storage class of old checkpoints (instant retrieval keeps restores fast)."
  type        = string
  default     = "GLACIER_IR"

  validation {
    condition     = contains(["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"], var.checkpoint_cold_storage_class)
    error_message = "checkpoint_cold_storage_class must be STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING or GLACIER_IR."
  }
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept (versioning protects against overwrites)."
  type        = number
  default     = 7
}

variable "enable_deletion_protection" {
  description = "Protect the DynamoDB tables against deletion (turn on for prod)."
  type        = bool
  default     = false
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the KMS key is deleted after a destroy."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "tags" {
  description = "Tags for every resource of the module (merged over the provider's default_tags)."
  type        = map(string)
  default     = {}
}

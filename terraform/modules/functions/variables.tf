variable "name_prefix" {
  description = "Prefix of every name in this module, e.g. `stepspot-dev`."
  type        = string
}

variable "package_zip_path" {
  description = "The stepspot package zip (`make build`: build/lambda/stepspot.zip)."
  type        = string
}

variable "package_zip_hash" {
  description = "Base64 SHA-256 of the package zip (filebase64sha256): an unchanged build does not redeploy."
  type        = string
}

variable "layer_zip_path" {
  description = "The dependencies layer zip (`make build`: build/lambda/dependencies.zip)."
  type        = string
}

variable "layer_zip_hash" {
  description = "Base64 SHA-256 of the layer zip."
  type        = string
}

variable "functions" {
  description = "Lambda functions by key (docs/contracts.md): handler, settings, extra environment and the IAM statements each needs."
  type = map(object({
    handler     = string
    description = string
    timeout     = optional(number, 60)
    memory_size = optional(number, 512)
    environment = optional(map(string), {})
    statements = optional(list(object({
      sid       = string
      actions   = list(string)
      resources = list(string)
    })), [])
  }))

  validation {
    condition     = alltrue([for k, f in var.functions : can(regex("^stepspot\\.handlers\\.[a-z_]+\\.lambda_handler$", f.handler))])
    error_message = "Every handler must be stepspot.handlers.<module>.lambda_handler."
  }

  validation {
    condition     = alltrue([for k, f in var.functions : f.timeout >= 1 && f.timeout <= 900])
    error_message = "Lambda timeouts must be between 1 and 900 seconds."
  }

  validation {
    condition     = alltrue(flatten([for k, f in var.functions : [for s in f.statements : [for a in s.actions : !strcontains(a, "*")]]]))
    error_message = "IAM actions must be explicit: no wildcards."
  }
}

variable "common_environment" {
  description = "Environment variables every function gets (bucket, tables, environment name, Powertools)."
  type        = map(string)
  default     = {}
}

variable "runtime" {
  description = "Python runtime; the layer's wheels are built for it."
  type        = string
  default     = "python3.12"
}

variable "log_retention_days" {
  description = "Retention of the function log groups."
  type        = number
  default     = 30
}

variable "log_level" {
  description = "Application log level of the functions."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARN", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARN or ERROR."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the log groups and the functions' environment variables."
  type        = string
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}

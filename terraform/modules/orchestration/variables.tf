variable "name_prefix" {
  description = "Prefix of every name in this module, e.g. `stepspot-dev`."
  type        = string
}

variable "workflow_definition_template" {
  description = "Path of the rendered workflow ASL (`make render`: build/asl/workflow.asl.json) with `$${name}` placeholders."
  type        = string
}

variable "task_definition_template" {
  description = "Path of the rendered task ASL (build/asl/task.asl.json)."
  type        = string
}

variable "definition_variables" {
  description = "Values of the placeholders (ARNs) of both templates; see docs/contracts.md \"ASL template variables\"."
  type        = map(string)
}

variable "lambda_function_arns" {
  description = "Functions the state machines invoke."
  type        = list(string)
}

variable "job_queue_arns" {
  description = "Batch job queues the task state machine submits to."
  type        = list(string)
}

variable "job_definition_names" {
  description = "Base job definition names; derived revisions `<name>-<image hash>` are covered too."
  type        = list(string)
}

variable "log_level" {
  description = "Execution history logged to CloudWatch."
  type        = string
  default     = "ERROR"

  validation {
    condition     = contains(["ALL", "ERROR", "FATAL", "OFF"], var.log_level)
    error_message = "log_level must be ALL, ERROR, FATAL or OFF."
  }
}

variable "include_execution_data" {
  description = "Log state input/output (only ids and URIs travel through state, no payloads)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the state machine log groups."
  type        = number
  default     = 30
}

variable "kms_key_arn" {
  description = "KMS key of the log groups."
  type        = string
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}

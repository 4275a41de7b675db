variable "name_prefix" {
  description = "Prefix of every name in this module, e.g. `stepspot-dev`."
  type        = string
}

variable "environment" {
  description = "Environment name: the `environment` dimension of the Stepspot metrics."
  type        = string
}

variable "metric_namespace" {
  description = "Namespace of the metrics the Lambdas emit."
  type        = string
  default     = "Stepspot"
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alert topic (null = no subscription)."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an e-mail address or null."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the alert topic."
  type        = string
}

variable "interruption_handler" {
  description = "The interruption handler Lambda (Spot warnings, rebalance recommendations)."
  type        = object({ arn = string, name = string })
}

variable "workflow_monitor" {
  description = "The workflow monitor Lambda (Batch job and Step Functions status changes)."
  type        = object({ arn = string, name = string })
}

variable "state_machine_arns" {
  description = "State machines by key (`workflow`, `task`) whose status changes are watched."
  type        = map(string)
}

variable "job_queue_arns" {
  description = "Job queues whose job state changes are watched."
  type        = list(string)
}

variable "batch_log_group_name" {
  description = "Log group of the Batch jobs: the agent's `checkpoint_failed` lines there become the CheckpointsFailed metric."
  type        = string
}

variable "function_names" {
  description = "Lambda functions by key with an error alarm each."
  type        = map(string)
}

variable "dashboard_body" {
  description = "Rendered CloudWatch dashboard JSON (templates/dashboard.json.tftpl, rendered by the root)."
  type        = string

  validation {
    condition     = can(jsondecode(var.dashboard_body).widgets)
    error_message = "dashboard_body must be dashboard JSON with a widgets list."
  }
}

variable "metric_alarms" {
  description = "Alarms on stepspot's own metrics (namespace metric_namespace, dimension environment), by name. The root passes templates/alarms.json."
  type = map(object({
    metric      = string
    statistic   = string
    period      = number
    threshold   = number
    description = string
  }))
  default = {}

  validation {
    condition     = alltrue([for a in values(var.metric_alarms) : contains(["Sum", "Average", "Maximum", "Minimum", "SampleCount"], a.statistic) && a.period >= 60 && a.period % 60 == 0 && a.threshold >= 0])
    error_message = "Each alarm needs a CloudWatch statistic (Sum, Average, Maximum, Minimum, SampleCount), a period that is a multiple of 60 s, and a threshold >= 0."
  }
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}

variable "event_max_age_seconds" {
  description = "How long EventBridge retries delivering an event to a Lambda before it goes to the dead-letter queue (60-86400)."
  type        = number
  default     = 3600

  validation {
    condition     = var.event_max_age_seconds >= 60 && var.event_max_age_seconds <= 86400
    error_message = "event_max_age_seconds must be between 60 and 86400 (EventBridge limits)."
  }
}

variable "event_max_retry_attempts" {
  description = "Delivery retries of EventBridge per event (0-185) before the dead-letter queue."
  type        = number
  default     = 8

  validation {
    condition     = var.event_max_retry_attempts >= 0 && var.event_max_retry_attempts <= 185
    error_message = "event_max_retry_attempts must be between 0 and 185 (EventBridge limits)."
  }
}

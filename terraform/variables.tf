variable "environment" {
  description = "Deployment environment; names every resource `stepspot-<environment>-...`."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "region" {
  description = "AWS region of the deployment."
  type        = string
}

variable "build_dir" {
  description = "Output of `make build` and `make render`, relative to terraform/."
  type        = string
  default     = "../build"
}

variable "dashboard_template_path" {
  description = "CloudWatch dashboard template (contracts: templates/dashboard.json.tftpl), relative to terraform/."
  type        = string
  default     = "../templates/dashboard.json.tftpl"
}

variable "alarm_definitions_path" {
  description = "Alarms on stepspot's metrics (templates/alarms.json: metric, statistic, period, threshold, description), relative to terraform/."
  type        = string
  default     = "../templates/alarms.json"
}

# ---------------------------------------------------------------- network
variable "create_vpc" {
  description = "Create a minimal VPC instead of using vpc_id/subnet_ids."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "Existing VPC (when create_vpc is false)."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Existing private subnets with outbound access (when create_vpc is false)."
  type        = list(string)
  default     = []
}

variable "availability_zones" {
  description = "Zones of the created VPC."
  type        = list(string)
  default     = []
}

# ---------------------------------------------------------------- compute
variable "spot_instance_types" {
  description = "Diversified Spot instance types (the seed's InstanceTypes)."
  type        = list(string)
  default     = ["c5.large", "c5.xlarge", "c5a.xlarge", "c6i.xlarge", "m5.large", "m5.xlarge", "m6i.xlarge", "r5.large"]
}

variable "spot_bid_percentage" {
  description = "Highest Spot price as a percentage of On-Demand (the seed's MaxSpotPrice)."
  type        = number
  default     = 100
}

variable "spot_max_vcpus" {
  description = "vCPU ceiling of the Spot environment (the seed's SpotFleetTargetCapacity)."
  type        = number
  default     = 256
}

variable "ondemand_max_vcpus" {
  description = "vCPU ceiling of the On-Demand environment."
  type        = number
  default     = 64
}

variable "mnp_max_vcpus" {
  description = "vCPU ceiling of the multi-node environment."
  type        = number
  default     = 288
}

variable "capacity_timeout_seconds" {
  description = "Seconds a job may wait RUNNABLE for capacity before its queue cancels it."
  type        = number
  default     = 900
}

variable "job_image" {
  description = "Default image of the base job definitions."
  type        = string
  default     = "public.ecr.aws/amazonlinux/amazonlinux:2023"
}

# ---------------------------------------------------------------- storage, logs, alerts
variable "checkpoint_retention_days" {
  description = "Days checkpoints are kept."
  type        = number
  default     = 30
}

variable "checkpoint_keep_last" {
  description = "Checkpoints per task the checkpoint manager always keeps."
  type        = number
  default     = 3
}

variable "force_destroy" {
  description = "Let destroy delete a non-empty bucket (dev only)."
  type        = bool
  default     = false
}

variable "enable_deletion_protection" {
  description = "Protect the DynamoDB tables against deletion."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of every log group."
  type        = number
  default     = 30
}

variable "lambda_log_level" {
  description = "Application log level of the Lambdas."
  type        = string
  default     = "INFO"
}

variable "state_machine_log_level" {
  description = "Step Functions log level (ALL, ERROR, FATAL, OFF)."
  type        = string
  default     = "ERROR"
}

variable "alarm_email" {
  description = "E-mail address for alerts (null = none)."
  type        = string
  default     = null
}

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
# Defaults fit the shipped examples and templates: current-generation c7i/m7i/r7i up to 64 vCPU and
# 512 GiB (r7i.16xlarge). The CLI's fit check reads these lists (tfvars, or the outputs once deployed).
variable "spot_instance_types" {
  description = "Diversified Spot instance types (the seed's InstanceTypes); the largest must hold the largest task."
  type        = list(string)
  default = [
    "c7i.large", "c7i.xlarge", "c7i.2xlarge", "c7i.4xlarge", "c7i.8xlarge", "c7i.16xlarge",
    "m7i.large", "m7i.xlarge", "m7i.2xlarge", "m7i.4xlarge", "m7i.8xlarge", "m7i.16xlarge",
    "r7i.large", "r7i.xlarge", "r7i.2xlarge", "r7i.4xlarge", "r7i.8xlarge", "r7i.16xlarge",
  ]
}

variable "ondemand_instance_types" {
  description = "On-Demand instance types (fallback of reclaimed and capacity-starved tasks): as large as the Spot ones."
  type        = list(string)
  default = [
    "c7i.xlarge", "c7i.2xlarge", "c7i.4xlarge", "c7i.8xlarge", "c7i.16xlarge",
    "m7i.xlarge", "m7i.2xlarge", "m7i.4xlarge", "m7i.8xlarge", "m7i.16xlarge",
    "r7i.xlarge", "r7i.2xlarge", "r7i.4xlarge", "r7i.8xlarge", "r7i.16xlarge",
  ]
}

variable "mnp_instance_types" {
  description = "Instance types of the multi-node (MPI) environment; EFA-capable ones (e.g. c7i.48xlarge, c6in.32xlarge) when mnp_efa_enabled."
  type        = list(string)
  default     = ["c7i.4xlarge", "c7i.8xlarge", "c7i.16xlarge", "m7i.16xlarge", "r7i.16xlarge"]
}

variable "mnp_efa_enabled" {
  description = "Elastic Fabric Adapter on the multi-node instances (needs EFA-capable mnp_instance_types)."
  type        = bool
  default     = false
}

variable "mnp_max_nodes" {
  description = "Most nodes a multi-node task may ask; the CLI refuses more before anything starts."
  type        = number
  default     = 8
}

variable "gpu_enabled" {
  description = "Create the GPU Spot and On-Demand compute environments and queues (ECS_AL2023_NVIDIA)."
  type        = bool
  default     = false
}

variable "mnp_ports" {
  description = "TCP ports open between the nodes of a multi-node job (only on the multi-node instances); null: sshd (22), the stepspot rendezvous (7470) and the molecular dynamics example's ranks (7471)."
  type = list(object({
    from_port = number
    to_port   = number
    purpose   = string
  }))
  default = null
}

variable "gpu_instance_types" {
  description = "NVIDIA instance types of the GPU environments (when gpu_enabled)."
  type        = list(string)
  default     = ["g5.xlarge", "g5.2xlarge", "g5.4xlarge", "g5.8xlarge", "g5.12xlarge", "g6.xlarge", "g6.2xlarge", "g6.4xlarge", "g6.8xlarge", "g6.12xlarge"]
}

variable "gpu_spot_max_vcpus" {
  description = "vCPU ceiling of the GPU Spot environment."
  type        = number
  default     = 64
}

variable "gpu_ondemand_max_vcpus" {
  description = "vCPU ceiling of the GPU On-Demand environment."
  type        = number
  default     = 32
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

variable "misconfiguration_timeout_seconds" {
  description = "Seconds a job that no instance type or vCPU ceiling of its queue can hold may wait RUNNABLE before its queue cancels it (the task then fails as misconfiguration)."
  type        = number
  default     = 600
}

variable "job_image" {
  description = "Default image of the base job definitions."
  type        = string
  default     = "public.ecr.aws/amazonlinux/amazonlinux:2023"
}

# ---------------------------------------------------------------- data
variable "shared_filesystem_enabled" {
  description = "Create an encrypted EFS file system that every job mounts at shared_mount_path (workflows opt in with global_config.shared_filesystem)."
  type        = bool
  default     = false
}

variable "shared_mount_path" {
  description = "Where jobs see the shared file system."
  type        = string
  default     = "/mnt/efs"
}

variable "fsx_lustre_enabled" {
  description = "Create an FSx for Lustre scratch file system (SCRATCH_2, 1.2 TiB) importing the bucket's runs/ prefix, mounted at fsx_mount_path on every host and job."
  type        = bool
  default     = false
}

variable "fsx_mount_path" {
  description = "Where hosts and jobs see the FSx for Lustre scratch file system."
  type        = string
  default     = "/mnt/fsx"
}

variable "input_bucket_arns" {
  description = "Extra buckets (ARNs) whose objects jobs may read for `uri` inputs (SSE-S3 or the project key; objects under another KMS key also need kms:Decrypt granted by that key)."
  type        = list(string)
  default     = []
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

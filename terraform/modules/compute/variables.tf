variable "name_prefix" {
  description = "Prefix of every name in this module, e.g. `stepspot-dev`."
  type        = string
}

variable "environment" {
  description = "Environment name (`dev`, `staging`, `prod`): given to jobs as STEPSPOT_ENVIRONMENT, the metric dimension of the agent's failure lines."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]{1,32}$", var.environment))
    error_message = "environment must be 1-32 lowercase letters, digits or '-'."
  }
}

variable "subnet_ids" {
  description = "Subnets of the compute environments (private, with outbound access)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "subnet_ids needs at least one subnet."
  }
}

variable "security_group_ids" {
  description = "Security groups of the Batch instances."
  type        = list(string)
}

variable "spot_instance_types" {
  description = "Diversified instance types of the Spot environment: more types = more Spot pools = fewer interruptions."
  type        = list(string)
  default     = ["c5.large", "c5.xlarge", "c5a.xlarge", "c6i.xlarge", "m5.large", "m5.xlarge", "m6i.xlarge", "r5.large"]

  validation {
    condition     = length(var.spot_instance_types) >= 2
    error_message = "spot_instance_types needs at least two types: one type is one Spot pool and fails as one."
  }
}

variable "ondemand_instance_types" {
  description = "Instance types of the On-Demand environment (fallback for reclaimed or capacity-starved tasks)."
  type        = list(string)
  default     = ["c5.xlarge", "m5.xlarge", "m6i.xlarge"]
}

variable "mnp_instance_types" {
  description = "Instance types of the multi-node (MPI) environment: one family, network optimised, for the cluster placement group."
  type        = list(string)
  default     = ["c5n.9xlarge", "c5n.18xlarge"]
}

variable "spot_bid_percentage" {
  description = "Highest Spot price, as a percentage of the On-Demand price (the seed's MaxSpotPrice)."
  type        = number
  default     = 100

  validation {
    condition     = var.spot_bid_percentage >= 1 && var.spot_bid_percentage <= 100
    error_message = "spot_bid_percentage must be between 1 and 100."
  }
}

variable "spot_max_vcpus" {
  description = "vCPU ceiling of the Spot environment (the seed's SpotFleetTargetCapacity, in vCPUs)."
  type        = number
  default     = 256

  validation {
    condition     = var.spot_max_vcpus >= 1
    error_message = "spot_max_vcpus must be at least 1."
  }
}

variable "ondemand_max_vcpus" {
  description = "vCPU ceiling of the On-Demand environment."
  type        = number
  default     = 64

  validation {
    condition     = var.ondemand_max_vcpus >= 1
    error_message = "ondemand_max_vcpus must be at least 1."
  }
}

variable "mnp_max_vcpus" {
  description = "vCPU ceiling of the multi-node environment (0 disables nothing: the environment scales from 0 anyway)."
  type        = number
  default     = 288
}

variable "capacity_timeout_seconds" {
  description = "How long a job may wait RUNNABLE for missing capacity before its queue cancels it (then the task state machine falls back)."
  type        = number
  default     = 900

  validation {
    condition     = var.capacity_timeout_seconds >= 600 && var.capacity_timeout_seconds <= 86400
    error_message = "capacity_timeout_seconds must be between 600 and 86400 (AWS Batch limits)."
  }
}

variable "job_image" {
  description = "Default container image of the base job definitions (the fleet manager registers one revision per task image)."
  type        = string
  default     = "public.ecr.aws/amazonlinux/amazonlinux:2023"
}

variable "job_vcpus" {
  description = "Default vCPUs of a job (tasks override per submission)."
  type        = number
  default     = 1
}

variable "job_memory_mib" {
  description = "Default memory of a job in MiB (tasks override per submission)."
  type        = number
  default     = 2048
}

variable "job_attempts" {
  description = "Batch-level attempts for jobs that never started (`Task failed to start`); everything else goes back to Step Functions."
  type        = number
  default     = 2

  validation {
    condition     = var.job_attempts >= 1 && var.job_attempts <= 10
    error_message = "job_attempts must be between 1 and 10 (AWS Batch limits)."
  }
}

variable "mnp_default_nodes" {
  description = "Node count of the base multi-node job definition (tasks override per submission)."
  type        = number
  default     = 2

  validation {
    condition     = var.mnp_default_nodes >= 2
    error_message = "A multi-node job needs at least 2 nodes."
  }
}

variable "root_volume_size_gib" {
  description = "Encrypted root volume of the Batch instances (images and scratch)."
  type        = number
  default     = 100
}

variable "checkpoint_dir" {
  description = "Path inside the job container where the agent restores and saves checkpoints."
  type        = string
  default     = "/scratch/checkpoint"
}

variable "bucket_name" {
  description = "Data/checkpoint bucket (storage module)."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the data/checkpoint bucket."
  type        = string
}

variable "checkpoint_table_name" {
  description = "Checkpoint table (storage module)."
  type        = string
}

variable "checkpoint_table_arn" {
  description = "ARN of the checkpoint table."
  type        = string
}

variable "state_table_arn" {
  description = "ARN of the state table: the agent checks that its workflow exists (GetItem) before running."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the bucket, table and log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the Batch job log group."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags for the module's resources. Compute environments get none: a tag change replaces them."
  type        = map(string)
  default     = {}
}

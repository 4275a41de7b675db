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

variable "mnp_security_group_ids" {
  description = "Extra security groups of the multi-node instances only (network module's mnp_security_group_id: the ports between the nodes of a job)."
  type        = list(string)
  default     = []
}

variable "spot_instance_types" {
  description = "Diversified instance types of the Spot environment: more types = more Spot pools = fewer interruptions. The largest must hold the largest task."
  type        = list(string)

  validation {
    condition     = length(var.spot_instance_types) >= 2
    error_message = "spot_instance_types needs at least two types: one type is one Spot pool and fails as one."
  }
}

variable "ondemand_instance_types" {
  description = "Instance types of the On-Demand environment (fallback for reclaimed or capacity-starved tasks): at least as large as the Spot ones, or a task moved here cannot be placed."
  type        = list(string)

  validation {
    condition     = length(var.ondemand_instance_types) >= 1
    error_message = "ondemand_instance_types needs at least one type."
  }
}

variable "mnp_instance_types" {
  description = "Instance types of the multi-node (MPI) environment, in one cluster placement group. With mnp_efa_enabled every type must support EFA (e.g. c7i.48xlarge, c6in.32xlarge, hpc7a.96xlarge)."
  type        = list(string)

  validation {
    condition     = length(var.mnp_instance_types) >= 1
    error_message = "mnp_instance_types needs at least one type."
  }
}

variable "mnp_efa_enabled" {
  description = "Give multi-node instances an Elastic Fabric Adapter (own launch template with an `efa` network interface, EFA device in the job definition); needs EFA-capable mnp_instance_types."
  type        = bool
  default     = false
}

variable "gpu_enabled" {
  description = "Create a GPU Spot and a GPU On-Demand compute environment and queue (`ECS_AL2023_NVIDIA` image: NVIDIA driver and container toolkit)."
  type        = bool
  default     = false
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU environments (NVIDIA; g5 = A10G, g6 = L4); needed when gpu_enabled."
  type        = list(string)
  default     = []

  validation {
    condition     = !var.gpu_enabled || length(var.gpu_instance_types) >= 1
    error_message = "gpu_enabled needs at least one type in gpu_instance_types."
  }

  validation {
    condition     = alltrue([for t in var.gpu_instance_types : can(regex("^(g4dn|g5|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e|p5en)\\.", t))])
    error_message = "gpu_instance_types must be NVIDIA GPU instance types (g4dn, g5, g6, g6e, gr6, p3, p4d, p5 families)."
  }
}

variable "gpu_spot_max_vcpus" {
  description = "vCPU ceiling of the GPU Spot environment (when gpu_enabled)."
  type        = number
  default     = 64

  validation {
    condition     = var.gpu_spot_max_vcpus >= 1
    error_message = "gpu_spot_max_vcpus must be at least 1."
  }
}

variable "gpu_ondemand_max_vcpus" {
  description = "vCPU ceiling of the GPU On-Demand environment (when gpu_enabled)."
  type        = number
  default     = 32

  validation {
    condition     = var.gpu_ondemand_max_vcpus >= 1
    error_message = "gpu_ondemand_max_vcpus must be at least 1."
  }
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

variable "misconfiguration_timeout_seconds" {
  description = "How long a job that no instance type or vCPU ceiling of its queue can hold (MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT, MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE) may wait RUNNABLE before its queue cancels it; the task then fails as misconfiguration."
  type        = number
  default     = 600

  validation {
    condition     = var.misconfiguration_timeout_seconds >= 600 && var.misconfiguration_timeout_seconds <= 86400
    error_message = "misconfiguration_timeout_seconds must be between 600 and 86400 (AWS Batch limits)."
  }
}

variable "job_image" {
  description = "Default container image of the base job definitions (the attempt manager registers one revision per task image)."
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

variable "mnp_max_nodes" {
  description = "Most nodes a multi-node task may ask (checked by the CLI); the base definition's node count must not exceed it."
  type        = number
  default     = 8

  validation {
    condition     = var.mnp_max_nodes >= 2 && var.mnp_max_nodes <= 1000
    error_message = "mnp_max_nodes must be between 2 and 1000 (AWS Batch allows up to 1000 nodes)."
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

variable "agent_bundle_source" {
  description = "Local path of the runner bundle (`make build` writes build/stepspot-agent.pyz), uploaded to the bucket and installed on every Batch host."
  type        = string
}

variable "agent_bundle_sha256" {
  description = "Hex SHA-256 of the runner bundle (filesha256): part of its S3 key, checked by the hosts after download."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.agent_bundle_sha256))
    error_message = "agent_bundle_sha256 must be a hex SHA-256 (use filesha256(path))."
  }
}

variable "input_bucket_arns" {
  description = "Extra buckets (ARNs) the jobs may read for `uri` inputs: s3:GetObject on their objects and s3:ListBucket."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.input_bucket_arns : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", arn))])
    error_message = "input_bucket_arns must be bucket ARNs like arn:aws:s3:::my-bucket (no key, no wildcard)."
  }
}

variable "shared_filesystem" {
  description = "EFS file system every job mounts at shared_mount_path (module filesystem's `efs` output), or null for none. Mounted with TLS through the access point, with IAM authorisation."
  type = object({
    file_system_id   = string
    file_system_arn  = string
    access_point_id  = string
    access_point_arn = string
  })
  default = null
}

variable "shared_mount_path" {
  description = "Where jobs see the shared file system."
  type        = string
  default     = "/mnt/efs"

  validation {
    condition     = can(regex("^/[^ ]*[^/]$", var.shared_mount_path)) && !contains(["/", "/opt/stepspot", "/tmp"], var.shared_mount_path)
    error_message = "shared_mount_path must be an absolute path without a trailing slash, other than /, /tmp and /opt/stepspot (e.g. /mnt/efs)."
  }
}

variable "fsx_lustre" {
  description = "FSx for Lustre scratch file system (module filesystem's `fsx_lustre` output) every host mounts at fsx_mount_path, bind-mounted into every job; null for none."
  type = object({
    dns_name   = string
    mount_name = string
  })
  default = null
}

variable "fsx_mount_path" {
  description = "Where hosts and jobs see the FSx for Lustre scratch file system."
  type        = string
  default     = "/mnt/fsx"

  validation {
    condition     = can(regex("^/[^ ]*[^/]$", var.fsx_mount_path)) && !contains(["/", "/opt/stepspot", "/tmp"], var.fsx_mount_path)
    error_message = "fsx_mount_path must be an absolute path without a trailing slash, other than /, /tmp and /opt/stepspot (e.g. /mnt/fsx)."
  }
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

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

variable "mnp_ports" {
  description = "TCP ports the nodes of one multi-node job open towards each other (the multi-node security group allows only these, only between its members): the stepspot rendezvous (STEPSPOT_MPI_PORT), the molecular dynamics example's ranks, sshd for MPI launchers. Pin an MPI library's TCP ports into a range here."
  type = list(object({
    from_port = number
    to_port   = number
    purpose   = string
  }))
  nullable = false # null from the root module: these defaults
  default = [
    { from_port = 22, to_port = 22, purpose = "sshd of MPI launchers (mpirun over ssh)" },
    { from_port = 7470, to_port = 7470, purpose = "stepspot rendezvous (STEPSPOT_MPI_PORT)" },
    { from_port = 7471, to_port = 7471, purpose = "molecular dynamics example: rank exchange (STEPSPOT_MPI_PORT + 1)" },
  ]

  validation {
    condition     = alltrue([for p in var.mnp_ports : p.from_port >= 1 && p.from_port <= p.to_port && p.to_port <= 65535])
    error_message = "Every mnp_ports entry needs 1 <= from_port <= to_port <= 65535."
  }
}

variable "mnp_efa_enabled" {
  description = "The multi-node instances have an Elastic Fabric Adapter: EFA needs all traffic allowed between the members of their security group, whatever mnp_ports says."
  type        = bool
  default     = false
}

data "aws_region" "current" {}

locals {
  region = data.aws_region.current.region

  # One map drives environments and queues. MNP jobs cannot run on Spot: their environment is
  # On-Demand, in a cluster placement group for low-latency MPI traffic. GPU environments use the
  # image with the NVIDIA driver and container toolkit.
  base_environments = {
    spot = {
      type                = "SPOT"
      allocation_strategy = "SPOT_PRICE_CAPACITY_OPTIMIZED"
      bid_percentage      = var.spot_bid_percentage
      instance_types      = var.spot_instance_types
      max_vcpus           = var.spot_max_vcpus
      placement_group     = null
      image_type          = "ECS_AL2023"
    }
    ondemand = {
      type                = "EC2"
      allocation_strategy = "BEST_FIT_PROGRESSIVE"
      bid_percentage      = null
      instance_types      = var.ondemand_instance_types
      max_vcpus           = var.ondemand_max_vcpus
      placement_group     = null
      image_type          = "ECS_AL2023"
    }
    mnp = {
      type                = "EC2"
      allocation_strategy = "BEST_FIT_PROGRESSIVE"
      bid_percentage      = null
      instance_types      = var.mnp_instance_types
      max_vcpus           = var.mnp_max_vcpus
      placement_group     = aws_placement_group.mnp.name
      image_type          = "ECS_AL2023"
    }
  }
  gpu_environments = {
    gpu_spot = {
      type                = "SPOT"
      allocation_strategy = "SPOT_PRICE_CAPACITY_OPTIMIZED"
      bid_percentage      = var.spot_bid_percentage
      instance_types      = var.gpu_instance_types
      max_vcpus           = var.gpu_spot_max_vcpus
      placement_group     = null
      image_type          = "ECS_AL2023_NVIDIA"
    }
    gpu_ondemand = {
      type                = "EC2"
      allocation_strategy = "BEST_FIT_PROGRESSIVE"
      bid_percentage      = null
      instance_types      = var.gpu_instance_types
      max_vcpus           = var.gpu_ondemand_max_vcpus
      placement_group     = null
      image_type          = "ECS_AL2023_NVIDIA"
    }
  }
  environments = merge(local.base_environments, var.gpu_enabled ? local.gpu_environments : {})

  # EC2 instance types with an Elastic Fabric Adapter (EC2 User Guide, "Supported instance types" of
  # EFA; refresh with `aws ec2 describe-instance-types --filters Name=network-info.efa-supported,Values=true`).
  efa_instance_types = toset([
    "c5n.9xlarge", "c5n.18xlarge", "c5n.metal", "c6a.48xlarge", "c6i.32xlarge", "c6id.32xlarge",
    "c6in.32xlarge", "c7a.48xlarge", "c7i.48xlarge", "c7i.metal-48xl", "m5n.24xlarge", "m5dn.24xlarge",
    "m6a.48xlarge", "m6i.32xlarge", "m6id.32xlarge", "m6in.32xlarge", "m7a.48xlarge", "m7i.48xlarge",
    "r5n.24xlarge", "r5dn.24xlarge", "r6a.48xlarge", "r6i.32xlarge", "r6id.32xlarge", "r6in.32xlarge",
    "r7a.48xlarge", "r7i.48xlarge", "hpc6a.48xlarge", "hpc6id.32xlarge", "hpc7a.12xlarge",
    "hpc7a.24xlarge", "hpc7a.48xlarge", "hpc7a.96xlarge", "g5.8xlarge", "g5.12xlarge", "g5.16xlarge",
    "g5.24xlarge", "g5.48xlarge", "p4d.24xlarge", "p5.48xlarge",
  ])
  # Multi-node instances also get the group that opens the ports between the nodes of a job.
  mnp_security_group_ids = concat(var.security_group_ids, var.mnp_security_group_ids)

  mnp_types_without_efa = [for t in var.mnp_instance_types : t if !contains(local.efa_instance_types, t)]

  # A job stuck RUNNABLE for these reasons would block the head of its queue: cancel it. Missing
  # capacity may pass, so it waits longer and is classified `capacity` (the task moves to On-Demand);
  # a job no instance type or vCPU ceiling of the queue can hold never starts, so it is cancelled soon
  # and classified `misconfiguration` (failures.py: fails at once, the reason says what to change).
  stuck_reasons = {
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"           = var.capacity_timeout_seconds
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"         = var.misconfiguration_timeout_seconds
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE" = var.misconfiguration_timeout_seconds
  }

  # Batch retries only jobs that never started; every other outcome (Spot reclaim, capacity,
  # application error) exits to Step Functions, which classifies it. One retry place per cause.
  retry_strategy = {
    attempts = var.job_attempts
    evaluate_on_exit = [
      { action = "RETRY", on_status_reason = "Task failed to start*", on_reason = null },
      { action = "RETRY", on_status_reason = null, on_reason = "CannotStartContainerError*" },
      { action = "EXIT", on_status_reason = "*", on_reason = null },
    ]
  }

  # The runner bundle: uploaded under its hash (a new bundle is a new key, hosts never mix versions),
  # copied to the host by the user data, mounted read-only into every job.
  agent_bundle_key      = "stepspot/agent/${var.agent_bundle_sha256}/stepspot-agent.pyz"
  agent_host_dir        = "/opt/stepspot"
  agent_bundle_path     = "${local.agent_host_dir}/stepspot-agent.pyz"
  agent_shiv_root       = "/tmp/stepspot-shiv"
  base_job_command_fail = "echo 'stepspot: this job definition must be run with a command override' >&2; exit 64"

  # STEPSPOT_ENVIRONMENT: the `environment` dimension of the agent's checkpoint_failed log lines.
  # The region: the SDKs in the container find it nowhere else (Batch does not set it).
  # SHIV_ROOT: where the bundle unpacks its dependencies (HOME may not be writable).
  job_environment = [
    { name = "STEPSPOT_ENVIRONMENT", value = var.environment },
    { name = "STEPSPOT_BUCKET", value = var.bucket_name },
    { name = "STEPSPOT_CHECKPOINT_TABLE", value = var.checkpoint_table_name },
    { name = "STEPSPOT_CHECKPOINT_DIR", value = var.checkpoint_dir },
    { name = "AWS_REGION", value = local.region },
    { name = "AWS_DEFAULT_REGION", value = local.region },
    { name = "SHIV_ROOT", value = local.agent_shiv_root },
  ]

  volumes = concat(
    [{ name = "stepspot-agent", host = { sourcePath = local.agent_host_dir } }],
    var.shared_filesystem == null ? [] : [{
      name = "shared"
      efsVolumeConfiguration = {
        fileSystemId      = var.shared_filesystem.file_system_id
        transitEncryption = "ENABLED"
        authorizationConfig = {
          accessPointId = var.shared_filesystem.access_point_id
          iam           = "ENABLED"
        }
      }
    }],
    var.fsx_lustre == null ? [] : [{ name = "fsx-scratch", host = { sourcePath = var.fsx_mount_path } }],
  )

  mount_points = concat(
    [{ sourceVolume = "stepspot-agent", containerPath = local.agent_host_dir, readOnly = true }],
    var.shared_filesystem == null ? [] : [{ sourceVolume = "shared", containerPath = var.shared_mount_path, readOnly = false }],
    var.fsx_lustre == null ? [] : [{ sourceVolume = "fsx-scratch", containerPath = var.fsx_mount_path, readOnly = false }],
  )

  container = {
    image = var.job_image
    # Every submission overrides the command; running the base definition as is is a mistake.
    command    = ["sh", "-c", local.base_job_command_fail]
    jobRoleArn = aws_iam_role.job.arn
    resourceRequirements = [
      { type = "VCPU", value = tostring(var.job_vcpus) },
      { type = "MEMORY", value = tostring(var.job_memory_mib) },
    ]
    environment = local.job_environment
    volumes     = local.volumes
    mountPoints = local.mount_points
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.jobs.name
        "awslogs-stream-prefix" = "job"
      }
    }
    privileged = false
  }

  # Batch passes the EFA device into the container only when the job definition names it.
  mnp_container = merge(local.container, { for k, v in {
    linuxParameters = {
      devices = [{ hostPath = "/dev/infiniband/uverbs0", containerPath = "/dev/infiniband/uverbs0", permissions = ["READ", "WRITE", "MKNOD"] }]
    }
  } : k => v if var.mnp_efa_enabled })

  user_data = {
    region         = local.region
    bucket         = var.bucket_name
    key            = local.agent_bundle_key
    sha256         = var.agent_bundle_sha256
    host_dir       = local.agent_host_dir
    fsx_dns_name   = var.fsx_lustre == null ? "" : var.fsx_lustre.dns_name
    fsx_mount_name = var.fsx_lustre == null ? "" : var.fsx_lustre.mount_name
    fsx_mount_path = var.fsx_mount_path
  }
}

################################################################################
# Runner bundle, shipped through the bucket
################################################################################

resource "aws_s3_object" "agent_bundle" {
  bucket      = var.bucket_name
  key         = local.agent_bundle_key
  source      = var.agent_bundle_source
  source_hash = var.agent_bundle_sha256
  kms_key_id  = var.kms_key_arn
  tags        = var.tags

  # A new bundle is a new key: upload it before the old one goes, so a host booting from the previous
  # launch template version meanwhile still finds its bundle.
  lifecycle {
    create_before_destroy = true
  }
}

################################################################################
# Launch template: IMDSv2 only, encrypted volumes
################################################################################

resource "aws_launch_template" "this" {
  # checkov:skip=CKV_AWS_341:Containers need a second hop to reach IMDSv2 (the agent polls spot/instance-action); tokens stay required.
  name_prefix = "${var.name_prefix}-batch-"
  description = "stepspot Batch instances"
  user_data   = base64encode(templatefile("${path.module}/user_data.tftpl", merge(local.user_data, { efa = false })))

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
    # Two hops: the checkpoint agent polls spot/instance-action from inside a container.
    http_put_response_hop_limit = 2
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.root_volume_size_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name_prefix}-batch" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = var.tags
  }

  tags = var.tags
}

# Multi-node instances with an Elastic Fabric Adapter. A launch template with network interfaces
# carries the security groups itself (the compute environment then names none).
resource "aws_launch_template" "mnp_efa" {
  # checkov:skip=CKV_AWS_341:Containers need a second hop to reach IMDSv2 (the agent polls spot/instance-action); tokens stay required.
  count = var.mnp_efa_enabled ? 1 : 0

  name_prefix = "${var.name_prefix}-batch-efa-"
  description = "stepspot multi-node Batch instances with EFA"
  user_data   = base64encode(templatefile("${path.module}/user_data.tftpl", merge(local.user_data, { efa = true })))

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 2
  }

  network_interfaces {
    device_index          = 0
    interface_type        = "efa"
    security_groups       = local.mnp_security_group_ids
    delete_on_termination = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.root_volume_size_gib
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name_prefix}-batch-efa" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = var.tags
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = length(local.mnp_types_without_efa) == 0
      error_message = "mnp_efa_enabled needs EFA-capable mnp_instance_types; these have no EFA: ${join(", ", local.mnp_types_without_efa)}. Use e.g. c7i.48xlarge, c6in.32xlarge or hpc7a.96xlarge, or set mnp_efa_enabled = false."
    }
  }
}

resource "aws_placement_group" "mnp" {
  name     = "${var.name_prefix}-mnp"
  strategy = "cluster"
  tags     = var.tags
}

################################################################################
# Compute environments and queues
################################################################################

resource "aws_batch_compute_environment" "this" {
  for_each = local.environments

  # No service_role: Batch uses its service-linked role AWSServiceRoleForBatch (created by Batch on the
  # first environment of the account), so environments update in place and never race IAM propagation.
  name_prefix = "${var.name_prefix}-${replace(each.key, "_", "-")}-"
  type        = "MANAGED"
  state       = "ENABLED"

  compute_resources {
    type                = each.value.type
    allocation_strategy = each.value.allocation_strategy
    bid_percentage      = each.value.bid_percentage
    instance_type       = each.value.instance_types
    min_vcpus           = 0
    max_vcpus           = each.value.max_vcpus
    placement_group     = each.value.placement_group
    subnets             = each.key == "mnp" ? slice(var.subnet_ids, 0, 1) : var.subnet_ids
    security_group_ids  = each.key == "mnp" ? (var.mnp_efa_enabled ? null : local.mnp_security_group_ids) : var.security_group_ids
    instance_role       = aws_iam_instance_profile.instance.arn

    ec2_configuration {
      image_type = each.value.image_type
    }

    launch_template {
      launch_template_id = each.key == "mnp" && var.mnp_efa_enabled ? aws_launch_template.mnp_efa[0].id : aws_launch_template.this.id
      version            = each.key == "mnp" && var.mnp_efa_enabled ? aws_launch_template.mnp_efa[0].latest_version : aws_launch_template.this.latest_version
    }
  }

  # The instance role's policies must outlive the environment: instances of a deleting environment
  # still download the bundle and register with ECS.
  depends_on = [aws_iam_role_policy_attachment.instance, aws_iam_role_policy.instance]

  lifecycle {
    create_before_destroy = true
    # A tag change replaces a compute environment: keep provider default_tags from ever doing it.
    ignore_changes = [tags, tags_all]
  }
}

resource "aws_batch_job_queue" "this" {
  for_each = local.environments

  name     = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  state    = "ENABLED"
  priority = 1

  compute_environment_order {
    order               = 1
    compute_environment = aws_batch_compute_environment.this[each.key].arn
  }

  dynamic "job_state_time_limit_action" {
    for_each = local.stuck_reasons

    content {
      action           = "CANCEL"
      state            = "RUNNABLE"
      reason           = job_state_time_limit_action.key
      max_time_seconds = job_state_time_limit_action.value
    }
  }

  tags = var.tags
}

################################################################################
# Job definitions: single-node container and multi-node parallel
################################################################################

resource "aws_cloudwatch_log_group" "jobs" {
  # checkov:skip=CKV_AWS_338:Retention is chosen per environment (prod keeps 365 days, dev 7).
  name              = "/aws/batch/${var.name_prefix}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_batch_job_definition" "container" {
  name                  = "${var.name_prefix}-container"
  type                  = "container"
  platform_capabilities = ["EC2"]
  propagate_tags        = true
  container_properties  = jsonencode(local.container)

  retry_strategy {
    attempts = local.retry_strategy.attempts

    dynamic "evaluate_on_exit" {
      for_each = local.retry_strategy.evaluate_on_exit

      content {
        action           = evaluate_on_exit.value.action
        on_status_reason = evaluate_on_exit.value.on_status_reason
        on_reason        = evaluate_on_exit.value.on_reason
      }
    }
  }

  tags = var.tags
}

resource "aws_batch_job_definition" "mnp" {
  name                  = "${var.name_prefix}-mnp"
  type                  = "multinode"
  platform_capabilities = ["EC2"]
  propagate_tags        = true

  lifecycle {
    precondition {
      condition     = var.mnp_default_nodes <= var.mnp_max_nodes
      error_message = "mnp_default_nodes (${var.mnp_default_nodes}) exceeds mnp_max_nodes (${var.mnp_max_nodes}): lower it or raise mnp_max_nodes."
    }
  }

  node_properties = jsonencode({
    mainNode = 0
    numNodes = var.mnp_default_nodes
    nodeRangeProperties = [
      { targetNodes = "0:", container = local.mnp_container },
    ]
  })

  retry_strategy {
    attempts = local.retry_strategy.attempts

    dynamic "evaluate_on_exit" {
      for_each = local.retry_strategy.evaluate_on_exit

      content {
        action           = evaluate_on_exit.value.action
        on_status_reason = evaluate_on_exit.value.on_status_reason
        on_reason        = evaluate_on_exit.value.on_reason
      }
    }
  }

  tags = var.tags
}

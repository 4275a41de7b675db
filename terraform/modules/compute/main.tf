locals {
  # One map drives environments and queues. MNP jobs cannot run on Spot: their environment is
  # On-Demand, in a cluster placement group for low-latency MPI traffic.
  environments = {
    spot = {
      type                = "SPOT"
      allocation_strategy = "SPOT_PRICE_CAPACITY_OPTIMIZED"
      bid_percentage      = var.spot_bid_percentage
      instance_types      = var.spot_instance_types
      max_vcpus           = var.spot_max_vcpus
      placement_group     = null
    }
    ondemand = {
      type                = "EC2"
      allocation_strategy = "BEST_FIT_PROGRESSIVE"
      bid_percentage      = null
      instance_types      = var.ondemand_instance_types
      max_vcpus           = var.ondemand_max_vcpus
      placement_group     = null
    }
    mnp = {
      type                = "EC2"
      allocation_strategy = "BEST_FIT_PROGRESSIVE"
      bid_percentage      = null
      instance_types      = var.mnp_instance_types
      max_vcpus           = var.mnp_max_vcpus
      placement_group     = aws_placement_group.mnp.name
    }
  }

  # A job stuck RUNNABLE for these reasons will never start: cancel it so the task state machine
  # classifies it as `capacity` and moves it to On-Demand instead of waiting forever.
  stuck_reasons = [
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
  ]

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

  # STEPSPOT_ENVIRONMENT: the `environment` dimension of the agent's checkpoint_failed log lines.
  job_environment = [
    { name = "STEPSPOT_ENVIRONMENT", value = var.environment },
    { name = "STEPSPOT_BUCKET", value = var.bucket_name },
    { name = "STEPSPOT_CHECKPOINT_TABLE", value = var.checkpoint_table_name },
    { name = "STEPSPOT_CHECKPOINT_DIR", value = var.checkpoint_dir },
  ]

  container = {
    image      = var.job_image
    command    = ["stepspot-agent", "--help"]
    jobRoleArn = aws_iam_role.job.arn
    resourceRequirements = [
      { type = "VCPU", value = tostring(var.job_vcpus) },
      { type = "MEMORY", value = tostring(var.job_memory_mib) },
    ]
    environment = local.job_environment
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.jobs.name
        "awslogs-stream-prefix" = "job"
      }
    }
    privileged = false
  }
}

################################################################################
# Launch template: IMDSv2 only, encrypted volumes
################################################################################

resource "aws_launch_template" "this" {
  # checkov:skip=CKV_AWS_341:Containers need a second hop to reach IMDSv2 (the agent polls spot/instance-action); tokens stay required.
  name_prefix = "${var.name_prefix}-batch-"
  description = "stepspot Batch instances"

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

  name_prefix  = "${var.name_prefix}-${each.key}-"
  type         = "MANAGED"
  state        = "ENABLED"
  service_role = aws_iam_role.service.arn

  compute_resources {
    type                = each.value.type
    allocation_strategy = each.value.allocation_strategy
    bid_percentage      = each.value.bid_percentage
    instance_type       = each.value.instance_types
    min_vcpus           = 0
    max_vcpus           = each.value.max_vcpus
    placement_group     = each.value.placement_group
    subnets             = each.key == "mnp" ? slice(var.subnet_ids, 0, 1) : var.subnet_ids
    security_group_ids  = var.security_group_ids
    instance_role       = aws_iam_instance_profile.instance.arn

    ec2_configuration {
      image_type = "ECS_AL2023"
    }

    launch_template {
      launch_template_id = aws_launch_template.this.id
      version            = aws_launch_template.this.latest_version
    }
  }

  # The service role must outlive the environment, or deleting the environment hangs in DELETING.
  depends_on = [aws_iam_role_policy_attachment.service]

  lifecycle {
    create_before_destroy = true
    # A tag change replaces a compute environment: keep provider default_tags from ever doing it.
    ignore_changes = [tags, tags_all]
  }
}

resource "aws_batch_job_queue" "this" {
  for_each = local.environments

  name     = "${var.name_prefix}-${each.key}"
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
      reason           = job_state_time_limit_action.value
      max_time_seconds = var.capacity_timeout_seconds
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

  node_properties = jsonencode({
    mainNode = 0
    numNodes = var.mnp_default_nodes
    nodeRangeProperties = [
      { targetNodes = "0:", container = local.container },
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

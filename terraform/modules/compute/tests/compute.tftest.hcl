mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
  mock_resource "aws_iam_role" {
    override_during = plan
    defaults        = { arn = "arn:aws:iam::123456789012:role/job" }
  }
}

variables {
  environment           = "test"
  name_prefix           = "stepspot-test"
  subnet_ids            = ["subnet-a", "subnet-b"]
  security_group_ids    = ["sg-1"]
  bucket_name           = "bucket"
  bucket_arn            = "arn:aws:s3:::bucket"
  checkpoint_table_name = "checkpoints"
  checkpoint_table_arn  = "arn:aws:dynamodb:eu-west-1:123456789012:table/checkpoints"
  state_table_arn       = "arn:aws:dynamodb:eu-west-1:123456789012:table/state"
  kms_key_arn           = "arn:aws:kms:eu-west-1:123456789012:key/test"
}

run "spot_environment_is_diversified_and_price_capacity_optimized" {
  command = plan

  assert {
    condition     = aws_batch_compute_environment.this["spot"].compute_resources[0].type == "SPOT"
    error_message = "The spot environment runs on Spot."
  }

  assert {
    condition     = aws_batch_compute_environment.this["spot"].compute_resources[0].allocation_strategy == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    error_message = "Spot uses SPOT_PRICE_CAPACITY_OPTIMIZED."
  }

  assert {
    condition     = length(aws_batch_compute_environment.this["spot"].compute_resources[0].instance_type) >= 2
    error_message = "Spot instance types are diversified."
  }

  assert {
    condition     = aws_batch_compute_environment.this["spot"].compute_resources[0].bid_percentage == 100 && aws_batch_compute_environment.this["spot"].compute_resources[0].max_vcpus == 256
    error_message = "Bid percentage and max vCPUs come from the variables."
  }

  assert {
    condition     = aws_batch_compute_environment.this["ondemand"].compute_resources[0].type == "EC2" && aws_batch_compute_environment.this["mnp"].compute_resources[0].type == "EC2"
    error_message = "On-Demand and multi-node environments are On-Demand."
  }

  assert {
    condition     = aws_batch_compute_environment.this["mnp"].compute_resources[0].placement_group == "stepspot-test-mnp" && aws_placement_group.mnp.strategy == "cluster"
    error_message = "Multi-node jobs run in a cluster placement group."
  }
}

run "queues_cancel_jobs_stuck_for_capacity" {
  command = plan

  assert {
    condition = alltrue([for q in aws_batch_job_queue.this : contains(
      [for a in q.job_state_time_limit_action : a.reason if a.action == "CANCEL" && a.state == "RUNNABLE" && a.max_time_seconds == 900],
      "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    )])
    error_message = "Every queue cancels jobs stuck RUNNABLE for capacity after capacity_timeout_seconds."
  }

  assert {
    condition     = length(aws_batch_job_queue.this) == 3
    error_message = "Spot, On-Demand and multi-node queues."
  }
}

run "job_definitions_end_retries_with_exit" {
  command = plan

  assert {
    condition     = aws_batch_job_definition.container.retry_strategy[0].evaluate_on_exit[2].action == "EXIT" && aws_batch_job_definition.container.retry_strategy[0].evaluate_on_exit[2].on_status_reason == "*"
    error_message = "The last evaluateOnExit rule exits on anything."
  }

  assert {
    condition     = aws_batch_job_definition.mnp.type == "multinode" && jsondecode(aws_batch_job_definition.mnp.node_properties).numNodes == 2
    error_message = "A multi-node parallel job definition exists."
  }

  assert {
    condition     = jsondecode(aws_batch_job_definition.container.container_properties).jobRoleArn == "arn:aws:iam::123456789012:role/job"
    error_message = "Jobs run with the job role."
  }

  assert {
    condition = alltrue([for props in [
      jsondecode(aws_batch_job_definition.container.container_properties),
      jsondecode(aws_batch_job_definition.mnp.node_properties).nodeRangeProperties[0].container,
    ] : contains(props.environment, { name = "STEPSPOT_ENVIRONMENT", value = "test" })])
    error_message = "Both job definitions give the agent STEPSPOT_ENVIRONMENT (the dimension of CheckpointsFailed)."
  }
}

run "launch_template_requires_imdsv2_and_encrypts" {
  command = plan

  assert {
    condition     = aws_launch_template.this.metadata_options[0].http_tokens == "required"
    error_message = "IMDSv2 is required."
  }

  assert {
    condition     = aws_launch_template.this.block_device_mappings[0].ebs[0].encrypted == "true"
    error_message = "Volumes are encrypted."
  }
}

run "rejects_a_single_spot_type" {
  command = plan

  variables {
    spot_instance_types = ["c5.large"]
  }

  expect_failures = [var.spot_instance_types]
}

run "rejects_bid_above_on_demand" {
  command = plan

  variables {
    spot_bid_percentage = 150
  }

  expect_failures = [var.spot_bid_percentage]
}

run "rejects_capacity_timeout_below_batch_minimum" {
  command = plan

  variables {
    capacity_timeout_seconds = 60
  }

  expect_failures = [var.capacity_timeout_seconds]
}

run "rejects_too_many_attempts" {
  command = plan

  variables {
    job_attempts = 11
  }

  expect_failures = [var.job_attempts]
}

run "rejects_single_node_mnp" {
  command = plan

  variables {
    mnp_default_nodes = 1
  }

  expect_failures = [var.mnp_default_nodes]
}

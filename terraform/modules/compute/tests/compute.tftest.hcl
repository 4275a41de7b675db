mock_provider "aws" {
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
  mock_data "aws_region" {
    defaults = { region = "eu-west-1" }
  }
  mock_resource "aws_iam_role" {
    override_during = plan
    defaults        = { arn = "arn:aws:iam::123456789012:role/job" }
  }
}

variables {
  environment             = "test"
  name_prefix             = "stepspot-test"
  subnet_ids              = ["subnet-a", "subnet-b"]
  security_group_ids      = ["sg-1"]
  mnp_security_group_ids  = ["sg-mnp"]
  bucket_name             = "bucket"
  bucket_arn              = "arn:aws:s3:::bucket"
  checkpoint_table_name   = "checkpoints"
  checkpoint_table_arn    = "arn:aws:dynamodb:eu-west-1:123456789012:table/checkpoints"
  state_table_arn         = "arn:aws:dynamodb:eu-west-1:123456789012:table/state"
  kms_key_arn             = "arn:aws:kms:eu-west-1:123456789012:key/test"
  spot_instance_types     = ["c7i.large", "m7i.large", "r7i.16xlarge"]
  ondemand_instance_types = ["c7i.xlarge", "r7i.16xlarge"]
  mnp_instance_types      = ["c7i.16xlarge"]
  agent_bundle_source     = "../../../tests/terraform/fixtures/stepspot-agent.pyz"
  agent_bundle_sha256     = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
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

run "queues_cancel_jobs_that_can_never_be_placed_sooner" {
  command = plan

  variables {
    gpu_enabled        = true
    gpu_instance_types = ["g5.xlarge"]
  }

  assert {
    condition = alltrue(flatten([for q in aws_batch_job_queue.this : [for reason in ["MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"] : contains(
      [for a in q.job_state_time_limit_action : a.reason if a.action == "CANCEL" && a.state == "RUNNABLE" && a.max_time_seconds == 600],
      reason
    )]]))
    error_message = "Every queue (GPU ones too) cancels a job no instance type or vCPU ceiling can hold after misconfiguration_timeout_seconds (600)."
  }

  assert {
    condition     = alltrue([for q in aws_batch_job_queue.this : length(q.job_state_time_limit_action) == 3])
    error_message = "Three stuck reasons per queue, each once."
  }
}

run "rejects_misconfiguration_timeout_outside_batch_limits" {
  command = plan

  variables {
    misconfiguration_timeout_seconds = 300
  }

  expect_failures = [var.misconfiguration_timeout_seconds]
}

run "only_multi_node_instances_get_the_node_ports_group" {
  command = plan

  assert {
    condition     = toset(aws_batch_compute_environment.this["mnp"].compute_resources[0].security_group_ids) == toset(["sg-1", "sg-mnp"])
    error_message = "The multi-node environment has the Batch group and the group of the ports between nodes."
  }

  assert {
    condition     = toset(aws_batch_compute_environment.this["spot"].compute_resources[0].security_group_ids) == toset(["sg-1"]) && toset(aws_batch_compute_environment.this["ondemand"].compute_resources[0].security_group_ids) == toset(["sg-1"])
    error_message = "Single-node environments do not open the node ports."
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

run "jobs_get_the_region_the_bundle_and_a_loud_default_command" {
  command = plan

  assert {
    condition = alltrue([for props in [
      jsondecode(aws_batch_job_definition.container.container_properties),
      jsondecode(aws_batch_job_definition.mnp.node_properties).nodeRangeProperties[0].container,
      ] : contains(props.environment, { name = "AWS_REGION", value = "eu-west-1" })
      && contains(props.environment, { name = "AWS_DEFAULT_REGION", value = "eu-west-1" })
    && contains(props.environment, { name = "SHIV_ROOT", value = "/tmp/stepspot-shiv" })])
    error_message = "Both job definitions set AWS_REGION, AWS_DEFAULT_REGION and SHIV_ROOT."
  }

  assert {
    condition = alltrue([for props in [
      jsondecode(aws_batch_job_definition.container.container_properties),
      jsondecode(aws_batch_job_definition.mnp.node_properties).nodeRangeProperties[0].container,
      ] : contains(props.mountPoints, { sourceVolume = "stepspot-agent", containerPath = "/opt/stepspot", readOnly = true })
    && contains(props.volumes, { name = "stepspot-agent", host = { sourcePath = "/opt/stepspot" } })])
    error_message = "Every job mounts the host's /opt/stepspot read-only at /opt/stepspot."
  }

  assert {
    condition = (
      jsondecode(aws_batch_job_definition.container.container_properties).command[0] == "sh"
      && strcontains(jsondecode(aws_batch_job_definition.container.container_properties).command[2], "must be run with a command override")
      && endswith(jsondecode(aws_batch_job_definition.container.container_properties).command[2], "exit 64")
    )
    error_message = "The base definition's command fails loudly when no override is given."
  }

  assert {
    condition     = output.agent_bundle_path == "/opt/stepspot/stepspot-agent.pyz"
    error_message = "The bundle path is the contract's."
  }

  assert {
    condition     = aws_s3_object.agent_bundle.key == "stepspot/agent/${var.agent_bundle_sha256}/stepspot-agent.pyz" && aws_s3_object.agent_bundle.bucket == "bucket"
    error_message = "The bundle is uploaded under its sha256."
  }
}

run "hosts_install_the_bundle_from_exactly_its_key" {
  command = plan

  assert {
    condition = alltrue([for needle in [
      "Content-Type: multipart/mixed",
      "s3://bucket/stepspot/agent/${var.agent_bundle_sha256}/stepspot-agent.pyz",
      "/opt/stepspot/stepspot-agent.pyz",
      "sha256sum --check",
    ] : strcontains(base64decode(aws_launch_template.this.user_data), needle)])
    error_message = "The user data is MIME multipart and installs the bundle after checking its hash."
  }

  assert {
    condition = anytrue([for st in data.aws_iam_policy_document.instance.statement :
    toset(st.actions) == toset(["s3:GetObject"]) && toset(st.resources) == toset(["arn:aws:s3:::bucket/stepspot/agent/${var.agent_bundle_sha256}/stepspot-agent.pyz"])])
    error_message = "The instance role reads exactly the bundle's key."
  }
}

run "job_role_lists_only_checkpoints_and_runs" {
  command = plan

  assert {
    condition = anytrue([for st in data.aws_iam_policy_document.job.statement :
      toset(st.actions) == toset(["s3:ListBucket"]) && toset(st.resources) == toset(["arn:aws:s3:::bucket"])
    && anytrue([for c in st.condition : c.variable == "s3:prefix" && toset(c.values) == toset(["checkpoints/*", "runs/*"])])])
    error_message = "s3:ListBucket on the bucket only under checkpoints/ and runs/."
  }

  assert {
    condition = anytrue([for st in data.aws_iam_policy_document.job.statement :
    toset(st.resources) == toset(["arn:aws:s3:::bucket/runs/*"]) && contains(st.actions, "s3:PutObject") && contains(st.actions, "s3:GetObject")])
    error_message = "Jobs read and write runs/."
  }

  assert {
    condition     = length([for st in data.aws_iam_policy_document.job.statement : st if st.sid == "ReadInputObjects" || st.sid == "SharedFileSystem"]) == 0
    error_message = "No input buckets and no shared file system: no statements for them."
  }

  assert {
    condition     = !strcontains(aws_batch_job_definition.container.container_properties, "efsVolumeConfiguration")
    error_message = "Without a shared file system no job mounts EFS."
  }
}

run "shared_filesystem_and_input_buckets" {
  command = plan

  variables {
    input_bucket_arns = ["arn:aws:s3:::inputs"]
    shared_filesystem = {
      file_system_id   = "fs-1"
      file_system_arn  = "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1"
      access_point_id  = "fsap-1"
      access_point_arn = "arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-1"
    }
    shared_mount_path = "/mnt/efs"
  }

  assert {
    condition = alltrue([for props in [
      jsondecode(aws_batch_job_definition.container.container_properties),
      jsondecode(aws_batch_job_definition.mnp.node_properties).nodeRangeProperties[0].container,
      ] : contains(props.volumes, {
        name = "shared"
        efsVolumeConfiguration = {
          fileSystemId        = "fs-1"
          transitEncryption   = "ENABLED"
          authorizationConfig = { accessPointId = "fsap-1", iam = "ENABLED" }
        }
    }) && contains(props.mountPoints, { sourceVolume = "shared", containerPath = "/mnt/efs", readOnly = false })])
    error_message = "Every job mounts the EFS access point over TLS with IAM at the mount path."
  }

  assert {
    condition = anytrue([for st in data.aws_iam_policy_document.job.statement :
      st.sid == "SharedFileSystem" && toset(st.actions) == toset(["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"])
      && toset(st.resources) == toset(["arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1"])
    && anytrue([for c in st.condition : c.variable == "elasticfilesystem:AccessPointArn" && toset(c.values) == toset(["arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-1"])])])
    error_message = "The job role mounts and writes only through the access point."
  }

  assert {
    condition = anytrue([for st in data.aws_iam_policy_document.job.statement :
    st.sid == "ReadInputObjects" && toset(st.actions) == toset(["s3:GetObject"]) && toset(st.resources) == toset(["arn:aws:s3:::inputs/*"])])
    error_message = "Input buckets are readable, nothing more."
  }
}

run "gpu_environments_are_off_by_default" {
  command = plan

  assert {
    condition     = length(aws_batch_compute_environment.this) == 3 && !contains(keys(output.job_queue_arns), "gpu_spot")
    error_message = "No GPU environment unless gpu_enabled."
  }

  assert {
    condition     = alltrue([for ce in aws_batch_compute_environment.this : ce.compute_resources[0].ec2_configuration[0].image_type == "ECS_AL2023"])
    error_message = "CPU environments use the standard ECS image."
  }
}

run "gpu_environments_when_enabled" {
  command = plan

  variables {
    gpu_enabled        = true
    gpu_instance_types = ["g5.4xlarge", "g6.4xlarge"]
  }

  assert {
    condition     = length(aws_batch_job_queue.this) == 5 && aws_batch_compute_environment.this["gpu_spot"].compute_resources[0].type == "SPOT" && aws_batch_compute_environment.this["gpu_ondemand"].compute_resources[0].type == "EC2"
    error_message = "A GPU Spot and a GPU On-Demand environment, each with its queue."
  }

  assert {
    condition = alltrue([for k in ["gpu_spot", "gpu_ondemand"] :
      aws_batch_compute_environment.this[k].compute_resources[0].ec2_configuration[0].image_type == "ECS_AL2023_NVIDIA"
    && toset(aws_batch_compute_environment.this[k].compute_resources[0].instance_type) == toset(["g5.4xlarge", "g6.4xlarge"])])
    error_message = "GPU environments run the NVIDIA image on the GPU instance types."
  }
}

run "rejects_non_gpu_types_for_gpu" {
  command = plan

  variables {
    gpu_enabled        = true
    gpu_instance_types = ["c7i.large"]
  }

  expect_failures = [var.gpu_instance_types]
}

run "efa_is_off_by_default" {
  command = plan

  assert {
    condition     = length(aws_launch_template.mnp_efa) == 0 && !strcontains(aws_batch_job_definition.mnp.node_properties, "uverbs0")
    error_message = "No EFA launch template or device unless mnp_efa_enabled."
  }
}

run "efa_for_multi_node_jobs" {
  command = plan

  override_resource {
    target          = aws_launch_template.mnp_efa
    override_during = plan
    values          = { id = "lt-efa" }
  }

  override_resource {
    target          = aws_launch_template.this
    override_during = plan
    values          = { id = "lt-default" }
  }

  variables {
    mnp_efa_enabled    = true
    mnp_instance_types = ["c7i.48xlarge", "c6in.32xlarge"]
  }

  assert {
    condition     = aws_launch_template.mnp_efa[0].network_interfaces[0].interface_type == "efa" && toset(aws_launch_template.mnp_efa[0].network_interfaces[0].security_groups) == toset(["sg-1", "sg-mnp"])
    error_message = "The MNP launch template has an EFA interface carrying the security groups."
  }

  assert {
    condition     = aws_batch_compute_environment.this["mnp"].compute_resources[0].launch_template[0].launch_template_id == "lt-efa" && aws_batch_compute_environment.this["spot"].compute_resources[0].launch_template[0].launch_template_id == "lt-default" && toset(aws_batch_compute_environment.this["spot"].compute_resources[0].security_group_ids) == toset(["sg-1"])
    error_message = "The MNP environment launches from the EFA template; the others keep their security groups."
  }

  assert {
    condition     = jsondecode(aws_batch_job_definition.mnp.node_properties).nodeRangeProperties[0].container.linuxParameters.devices[0].hostPath == "/dev/infiniband/uverbs0"
    error_message = "The multi-node job definition passes the EFA device."
  }
}

run "rejects_efa_on_types_without_efa" {
  command = plan

  variables {
    mnp_efa_enabled    = true
    mnp_instance_types = ["c7i.16xlarge"]
  }

  expect_failures = [aws_launch_template.mnp_efa]
}

run "rejects_more_default_nodes_than_the_maximum" {
  command = plan

  variables {
    mnp_default_nodes = 4
    mnp_max_nodes     = 3
  }

  expect_failures = [aws_batch_job_definition.mnp]
}

run "rejects_input_bucket_with_a_key" {
  command = plan

  variables {
    input_bucket_arns = ["arn:aws:s3:::inputs/data/*"]
  }

  expect_failures = [var.input_bucket_arns]
}

run "interruptions_cover_every_spot_environment" {
  command = plan

  variables {
    gpu_enabled        = true
    gpu_instance_types = ["g5.4xlarge"]
  }

  override_resource {
    target          = aws_batch_compute_environment.this["spot"]
    override_during = plan
    values          = { name = "stepspot-test-spot-1" }
  }

  override_resource {
    target          = aws_batch_compute_environment.this["gpu_spot"]
    override_during = plan
    values          = { name = "stepspot-test-gpu-spot-1" }
  }

  override_resource {
    target          = aws_batch_compute_environment.this["ondemand"]
    override_during = plan
    values          = { name = "stepspot-test-ondemand-1" }
  }

  override_resource {
    target          = aws_batch_compute_environment.this["gpu_ondemand"]
    override_during = plan
    values          = { name = "stepspot-test-gpu-ondemand-1" }
  }

  override_resource {
    target          = aws_batch_compute_environment.this["mnp"]
    override_during = plan
    values          = { name = "stepspot-test-mnp-1" }
  }

  assert {
    condition     = toset(output.spot_compute_environment_names) == toset(["stepspot-test-spot-1", "stepspot-test-gpu-spot-1"])
    error_message = "Both Spot environments (CPU and GPU) are listed for the interruption handler."
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  name_prefix = "stepspot-${var.environment}"
  account_id  = data.aws_caller_identity.current.account_id
  partition   = data.aws_partition.current.partition
  arn_tail    = "${var.region}:${local.account_id}"

  # ARNs built from names break the cycles Lambda <-> state machine <-> alerts topic.
  workflow_state_machine_arn = "arn:${local.partition}:states:${local.arn_tail}:stateMachine:${local.name_prefix}-workflow"
  task_state_machine_arn     = "arn:${local.partition}:states:${local.arn_tail}:stateMachine:${local.name_prefix}-task"
  task_execution_arn_prefix  = "arn:${local.partition}:states:${local.arn_tail}:execution:${local.name_prefix}-task"
  sns_topic_arn              = "arn:${local.partition}:sns:${local.arn_tail}:${local.name_prefix}-alerts"
  # Built from the functions module's naming rule: the monitor calls the scheduler, and a module output
  # cannot feed that module's own environment.
  scheduler_function_arn = "arn:${local.partition}:lambda:${local.arn_tail}:function:${local.name_prefix}-scheduler"
  batch_arn_prefix       = "arn:${local.partition}:batch:${local.arn_tail}"

  lambda_zip   = "${var.build_dir}/lambda/stepspot.zip"
  layer_zip    = "${var.build_dir}/lambda/dependencies.zip"
  agent_bundle = "${var.build_dir}/stepspot-agent.pyz"
  asl_dir      = "${var.build_dir}/asl"

  # The bucket ARN: s3:ListBucket takes it as is, object actions take "${local.bucket_arn}/<prefix>/*".
  bucket_arn  = module.storage.bucket_arn
  state_table = module.storage.state_table_arn
  ckpt_table  = module.storage.checkpoint_table_arn

  # The GPU queue pair by the variable the Lambdas read: absent without gpu_enabled (the attempt manager
  # then refuses a GPU task with a sentence naming gpu_enabled).
  # Absent (not empty) without GPUs, so the attempt manager's refusal names gpu_enabled.
  gpu_queue_environment = var.gpu_enabled ? tomap({
    STEPSPOT_GPU_SPOT_QUEUE_ARN     = module.compute.job_queue_arns["gpu_spot"]
    STEPSPOT_GPU_ONDEMAND_QUEUE_ARN = module.compute.job_queue_arns["gpu_ondemand"]
  }) : tomap({})
}

################################################################################
# Storage and network
################################################################################

module "storage" {
  source = "./modules/storage"

  name_prefix                = local.name_prefix
  force_destroy              = var.force_destroy
  checkpoint_retention_days  = var.checkpoint_retention_days
  enable_deletion_protection = var.enable_deletion_protection
}

module "network" {
  source = "./modules/network"

  name_prefix        = local.name_prefix
  create_vpc         = var.create_vpc
  vpc_id             = var.vpc_id
  subnet_ids         = var.subnet_ids
  availability_zones = var.availability_zones
  kms_key_arn        = module.storage.kms_key_arn
  mnp_ports          = var.mnp_ports
  mnp_efa_enabled    = var.mnp_efa_enabled
}

################################################################################
# Batch
################################################################################

module "filesystem" {
  source = "./modules/filesystem"

  name_prefix              = local.name_prefix
  efs_enabled              = var.shared_filesystem_enabled
  fsx_lustre_enabled       = var.fsx_lustre_enabled
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.subnet_ids
  client_security_group_id = module.network.security_group_id
  kms_key_arn              = module.storage.kms_key_arn
  bucket_name              = module.storage.bucket_name
}

module "compute" {
  source = "./modules/compute"

  name_prefix                      = local.name_prefix
  environment                      = var.environment
  subnet_ids                       = module.network.subnet_ids
  security_group_ids               = [module.network.security_group_id]
  mnp_security_group_ids           = [module.network.mnp_security_group_id]
  spot_instance_types              = var.spot_instance_types
  ondemand_instance_types          = var.ondemand_instance_types
  mnp_instance_types               = var.mnp_instance_types
  mnp_efa_enabled                  = var.mnp_efa_enabled
  mnp_max_nodes                    = var.mnp_max_nodes
  gpu_enabled                      = var.gpu_enabled
  gpu_instance_types               = var.gpu_instance_types
  gpu_spot_max_vcpus               = var.gpu_spot_max_vcpus
  gpu_ondemand_max_vcpus           = var.gpu_ondemand_max_vcpus
  spot_bid_percentage              = var.spot_bid_percentage
  spot_max_vcpus                   = var.spot_max_vcpus
  ondemand_max_vcpus               = var.ondemand_max_vcpus
  mnp_max_vcpus                    = var.mnp_max_vcpus
  capacity_timeout_seconds         = var.capacity_timeout_seconds
  misconfiguration_timeout_seconds = var.misconfiguration_timeout_seconds
  job_image                        = var.job_image
  bucket_name                      = module.storage.bucket_name
  bucket_arn                       = module.storage.bucket_arn
  checkpoint_table_name            = module.storage.checkpoint_table_name
  checkpoint_table_arn             = module.storage.checkpoint_table_arn
  state_table_arn                  = module.storage.state_table_arn
  kms_key_arn                      = module.storage.kms_key_arn
  log_retention_days               = var.log_retention_days
  input_bucket_arns                = var.input_bucket_arns
  agent_bundle_source              = local.agent_bundle
  agent_bundle_sha256              = filesha256(local.agent_bundle)

  shared_filesystem = module.filesystem.efs
  shared_mount_path = var.shared_mount_path
  fsx_lustre        = module.filesystem.fsx_lustre
  fsx_mount_path    = var.fsx_mount_path
}

################################################################################
# Lambdas (keys, handlers and environment: docs/contracts.md)
################################################################################

module "functions" {
  source = "./modules/functions"

  name_prefix        = local.name_prefix
  package_zip_path   = local.lambda_zip
  package_zip_hash   = filebase64sha256(local.lambda_zip)
  layer_zip_path     = local.layer_zip
  layer_zip_hash     = filebase64sha256(local.layer_zip)
  kms_key_arn        = module.storage.kms_key_arn
  log_retention_days = var.log_retention_days
  log_level          = var.lambda_log_level

  common_environment = {
    STEPSPOT_BUCKET              = module.storage.bucket_name
    STEPSPOT_STATE_TABLE         = module.storage.state_table_name
    STEPSPOT_ENVIRONMENT         = var.environment
    POWERTOOLS_SERVICE_NAME      = "stepspot"
    POWERTOOLS_METRICS_NAMESPACE = "Stepspot"
  }

  functions = {
    workflow_parser = {
      handler     = "stepspot.handlers.workflow_parser.lambda_handler"
      description = "Validates a workflow, writes its plan to S3 and one state item per task"
      # 100,000 tasks (the maximum): ~6 CPU-seconds of planning and ~4,000 BatchWriteItem calls.
      timeout = 300
      # Memory: twice the measured peak at the maximum size (~310 MB), docs/plan-format.md "Measurements".
      memory_size = 640
      statements = [
        {
          sid       = "WorkflowObjects"
          actions   = ["s3:GetObject", "s3:PutObject"]
          resources = ["${local.bucket_arn}/workflows/*"]
        },
        # GetItem: the existing registration; BatchWriteItem: task items; PutItem: the conditional META item.
        {
          sid       = "StateItems"
          actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem"]
          resources = [local.state_table]
        },
      ]
    }
    scheduler = {
      handler     = "stepspot.handlers.scheduler.lambda_handler"
      description = "Dataflow scheduling: starts ready tasks, completes the workflow callback"
      # stepspot.scheduler.DEPENDENTS_PER_INVOCATION is derived from this timeout: change them together.
      timeout = 300
      # Reads one plan shard per event: ~80 MB at any workflow size; the floor keeps cold starts quick.
      memory_size = 256
      environment = {
        STEPSPOT_TASK_STATE_MACHINE_ARN = local.task_state_machine_arn
        # Itself: a wide fan-out is resolved in slices, each handing the rest to an asynchronous invocation.
        STEPSPOT_SCHEDULER_FUNCTION_ARN = local.scheduler_function_arn
      }
      statements = [
        {
          sid       = "ReadPlans"
          actions   = ["s3:GetObject"]
          resources = ["${local.bucket_arn}/workflows/*"]
        },
        # A TransactWriteItems call is authorised per contained Put/Update/Delete (there is no
        # dynamodb:TransactWriteItems action).
        {
          sid = "StateItems"
          actions = [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
          ]
          resources = [local.state_table]
        },
        {
          sid       = "StartTasks"
          actions   = ["states:StartExecution"]
          resources = [local.task_state_machine_arn]
        },
        # abort: a workflow that fails for good stops its running task executions.
        {
          sid       = "StopTasks"
          actions   = ["states:StopExecution"]
          resources = ["${local.task_execution_arn_prefix}:*"]
        },
        # Task-token calls have no resource type (Service Authorization Reference): only "*" grants them.
        {
          sid       = "CompleteWorkflow"
          actions   = ["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"]
          resources = ["*"]
        },
        # The rest of a wide fan-out, a continue-mode skip walk or a start with many roots: an asynchronous
        # invocation of itself (resolve_dependents, skip_descendants, start_remaining).
        {
          sid       = "ContinueFanOut"
          actions   = ["lambda:InvokeFunction"]
          resources = [local.scheduler_function_arn]
        },
        # Lambda sends an asynchronous event that failed every attempt to the on-failure destination with
        # the function's own role (aws_lambda_function_event_invoke_config.scheduler below).
        {
          sid       = "LostContinuations"
          actions   = ["sns:Publish"]
          resources = [local.sns_topic_arn]
        },
      ]
    }
    checkpoint_manager = {
      handler     = "stepspot.handlers.checkpoint_manager.lambda_handler"
      description = "Checkpoint save, find (for the runner's restore), list and cleanup"
      timeout     = 300
      environment = {
        STEPSPOT_CHECKPOINT_TABLE          = module.storage.checkpoint_table_name
        STEPSPOT_CHECKPOINT_RETENTION_DAYS = tostring(var.checkpoint_retention_days)
        STEPSPOT_CHECKPOINT_KEEP_LAST      = tostring(var.checkpoint_keep_last)
      }
      statements = [
        # Saves here are event-sized (far below the 16 MiB multipart threshold): no AbortMultipartUpload.
        {
          sid       = "CheckpointObjects"
          actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
          resources = ["${local.bucket_arn}/checkpoints/*"]
        },
        # HeadBucket and ListObjectsV2 (cleanup walks checkpoints/) are s3:ListBucket on the bucket ARN itself.
        {
          sid       = "ListBucket"
          actions   = ["s3:ListBucket"]
          resources = [local.bucket_arn]
        },
        {
          sid = "CheckpointItems"
          actions = [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
          ]
          resources = [local.ckpt_table]
        },
        # Only "does this workflow exist" (WorkflowRegistry.exists).
        {
          sid       = "ReadState"
          actions   = ["dynamodb:GetItem"]
          resources = [local.state_table]
        },
      ]
    }
    attempt_manager = {
      handler     = "stepspot.handlers.attempt_manager.lambda_handler"
      description = "Each task attempt: Spot or On-Demand (circuit breaker), failure class, retry decision"
      timeout     = 60
      # Reads one plan shard per event: ~80 MB at any workflow size; the floor keeps cold starts quick.
      memory_size = 256
      environment = merge(local.gpu_queue_environment, {
        STEPSPOT_SPOT_QUEUE_ARN         = module.compute.job_queue_arns["spot"]
        STEPSPOT_ONDEMAND_QUEUE_ARN     = module.compute.job_queue_arns["ondemand"]
        STEPSPOT_MNP_QUEUE_ARN          = module.compute.job_queue_arns["mnp"]
        STEPSPOT_SPOT_COMPUTE_ENV       = module.compute.compute_environment_names["spot"]
        STEPSPOT_ONDEMAND_COMPUTE_ENV   = module.compute.compute_environment_names["ondemand"]
        STEPSPOT_MNP_COMPUTE_ENV        = module.compute.compute_environment_names["mnp"]
        STEPSPOT_JOB_DEFINITION_ARN     = module.compute.job_definition_arn
        STEPSPOT_MNP_JOB_DEFINITION_ARN = module.compute.mnp_job_definition_arn
        # Instance types per queue under the queue names of the workflow format (gpu_spot -> gpu-spot,
        # ondemand -> on-demand): the ceiling of out-of-memory escalation.
        STEPSPOT_INSTANCE_TYPES = jsonencode({
          for key, types in module.compute.instance_types : replace(replace(key, "ondemand", "on-demand"), "_", "-") => types
        })
        # Where jobs of workflows with global_config.shared_filesystem find it (STEPSPOT_SHARED_DIR).
        STEPSPOT_SHARED_MOUNT_PATH = var.shared_mount_path
      })
      statements = [
        {
          sid       = "ReadPlans"
          actions   = ["s3:GetObject"]
          resources = ["${local.bucket_arn}/workflows/*"]
        },
        {
          sid       = "BreakerAndAttemptItems"
          actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
          resources = [local.state_table]
        },
        {
          sid       = "ManageEnvironments"
          actions   = ["batch:UpdateComputeEnvironment"]
          resources = values(module.compute.compute_environment_arns)
        },
        # Describe* have no resource-level permissions in AWS Batch.
        {
          sid = "DescribeBatch"
          actions = [
            "batch:DescribeComputeEnvironments",
            "batch:DescribeJobDefinitions",
            "batch:ListJobs",
          ]
          resources = ["*"]
        },
        {
          sid       = "DeriveJobDefinitions"
          actions   = ["batch:RegisterJobDefinition", "batch:DeregisterJobDefinition", "batch:TagResource"]
          resources = ["${local.batch_arn_prefix}:job-definition/${local.name_prefix}-*"]
        },
        {
          sid       = "PassJobRole"
          actions   = ["iam:PassRole"]
          resources = [module.compute.job_role_arn]
        },
      ]
    }
    interruption_handler = {
      handler     = "stepspot.handlers.interruption_handler.lambda_handler"
      description = "Spot interruption warnings and rebalance recommendations -> affected tasks"
      timeout     = 60
      environment = {
        # Every Spot environment (GPU Spot too): the handler takes a comma-separated list.
        STEPSPOT_SPOT_COMPUTE_ENV = join(",", module.compute.spot_compute_environment_names)
        STEPSPOT_SNS_TOPIC_ARN    = local.sns_topic_arn
      }
      statements = [
        # DeleteItem releases an event's dedup claim when processing fails, so the redelivery does the work.
        {
          sid       = "TaskItems"
          actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
          resources = [local.state_table]
        },
        {
          sid = "FindJobsOnInstance"
          actions = [
            "ecs:ListContainerInstances",
            "ecs:DescribeContainerInstances",
            "ecs:ListTasks",
            "ecs:DescribeTasks",
          ]
          resources = [
            "arn:${local.partition}:ecs:${local.arn_tail}:cluster/*",
            "arn:${local.partition}:ecs:${local.arn_tail}:container-instance/*",
            "arn:${local.partition}:ecs:${local.arn_tail}:task/*",
          ]
        },
        # Batch Describe calls have no resource-level permissions. Instance type and zone come from ECS.
        {
          sid       = "Describe"
          actions   = ["batch:DescribeComputeEnvironments", "batch:DescribeJobs"]
          resources = ["*"]
        },
        {
          sid       = "Alert"
          actions   = ["sns:Publish"]
          resources = [local.sns_topic_arn]
        },
      ]
    }
    workflow_monitor = {
      handler     = "stepspot.handlers.workflow_monitor.lambda_handler"
      description = "Batch job and Step Functions status changes -> task status, metrics, alerts"
      timeout     = 60
      # The GPU pair too: a GPU task's Spot and On-Demand attempts count like any other's.
      environment = merge(local.gpu_queue_environment, {
        STEPSPOT_CHECKPOINT_TABLE = module.storage.checkpoint_table_name
        STEPSPOT_SNS_TOPIC_ARN    = local.sns_topic_arn
        # A task execution that ended FAILED/TIMED_OUT/ABORTED without telling the scheduler is reported to it.
        STEPSPOT_SCHEDULER_FUNCTION_ARN = local.scheduler_function_arn
        STEPSPOT_SPOT_QUEUE_ARN         = module.compute.job_queue_arns["spot"]
        STEPSPOT_ONDEMAND_QUEUE_ARN     = module.compute.job_queue_arns["ondemand"]
      })
      statements = [
        {
          sid = "StateItems"
          actions = [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
          ]
          resources = [local.state_table]
        },
        {
          sid       = "ReadCheckpoints"
          actions   = ["dynamodb:Query"]
          resources = [local.ckpt_table]
        },
        {
          sid       = "ReportLostTaskExecutions"
          actions   = ["lambda:InvokeFunction"]
          resources = [local.scheduler_function_arn]
        },
        {
          sid       = "Alert"
          actions   = ["sns:Publish"]
          resources = [local.sns_topic_arn]
        },
        # The cost ledger: the instance each job ran on (its ECS container instance) ...
        {
          sid       = "CostLedgerPlacement"
          actions   = ["ecs:DescribeContainerInstances"]
          resources = ["arn:${local.partition}:ecs:${local.arn_tail}:container-instance/*"]
        },
        # ... its type, zone and Spot price then (these EC2 Describe* calls have no resource-level permissions).
        {
          sid       = "CostLedgerPrices"
          actions   = ["ec2:DescribeInstances", "ec2:DescribeInstanceTypes", "ec2:DescribeSpotPriceHistory"]
          resources = ["*"]
        },
      ]
    }
  }
}

# The scheduler's asynchronous events (its own fan-out continuations, the monitor's reports): Lambda
# retries a failed one twice, then publishes it (the whole event, with the error) to the alerts topic, so
# a lost continuation is never silent. The workflow then stops getting heartbeats from it and StartWorkflow
# times out; a redrive recounts every dependency from the succeeded tasks.
# A fan-out of 99,999 dependents is a chain of 100 invocations of the scheduler by itself; Lambda's
# recursive loop detection would stop a chain of Invoke calls after 16 ("Terminate" by default). Each
# link is bounded (slices advance to the end of the task's dependents and stop), so the loop is finite.
resource "aws_lambda_function_recursion_config" "scheduler" {
  function_name  = module.functions.function_names["scheduler"]
  recursive_loop = "Allow"
}

resource "aws_lambda_function_event_invoke_config" "scheduler" {
  function_name                = module.functions.function_names["scheduler"]
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 21600 # Lambda's maximum: a throttled continuation waits rather than drops

  destination_config {
    on_failure {
      destination = local.sns_topic_arn
    }
  }
}

################################################################################
# State machines (rendered by `make render`, filled here)
################################################################################

module "orchestration" {
  source = "./modules/orchestration"

  name_prefix                  = local.name_prefix
  workflow_definition_template = "${local.asl_dir}/workflow.asl.json"
  task_definition_template     = "${local.asl_dir}/task.asl.json"
  lambda_function_arns         = values(module.functions.function_arns)
  job_queue_arns               = values(module.compute.job_queue_arns)
  job_definition_names         = [module.compute.job_definition_name, module.compute.mnp_job_definition_name]
  kms_key_arn                  = module.storage.kms_key_arn
  log_level                    = var.state_machine_log_level
  log_retention_days           = var.log_retention_days

  # Exactly the placeholders of the rendered templates (build/asl/variables.json, stepspot.asl.ARN_VARIABLES);
  # the module refuses any other. The task state machine, queues and job definitions reach the Lambdas
  # through their environment instead.
  definition_variables = {
    workflow_parser_arn    = module.functions.function_arns["workflow_parser"]
    scheduler_arn          = module.functions.function_arns["scheduler"]
    checkpoint_manager_arn = module.functions.function_arns["checkpoint_manager"]
    attempt_manager_arn    = module.functions.function_arns["attempt_manager"]
  }
}

################################################################################
# Monitoring
################################################################################

module "monitoring" {
  source = "./modules/monitoring"

  name_prefix = local.name_prefix
  environment = var.environment
  alarm_email = var.alarm_email
  kms_key_arn = module.storage.kms_key_arn
  interruption_handler = {
    arn  = module.functions.function_arns["interruption_handler"]
    name = module.functions.function_names["interruption_handler"]
  }
  workflow_monitor = {
    arn  = module.functions.function_arns["workflow_monitor"]
    name = module.functions.function_names["workflow_monitor"]
  }
  job_queue_arns       = values(module.compute.job_queue_arns)
  function_names       = module.functions.function_names
  batch_log_group_name = module.compute.batch_log_group_name

  state_machine_arns = {
    workflow = module.orchestration.workflow_state_machine_arn
    task     = module.orchestration.task_state_machine_arn
  }

  metric_alarms = jsondecode(file(var.alarm_definitions_path))

  dashboard_body = templatefile(var.dashboard_template_path, {
    region                     = var.region
    namespace                  = "Stepspot"
    environment                = var.environment
    workflow_state_machine_arn = local.workflow_state_machine_arn
    task_state_machine_arn     = local.task_state_machine_arn
    spot_job_queue_name        = module.compute.job_queue_names["spot"]
    ondemand_job_queue_name    = module.compute.job_queue_names["ondemand"]
    function_names             = values(module.functions.function_names)
  })
}

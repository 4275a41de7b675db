# Read by the stepspot CLI (docs/contracts.md, "Terraform root outputs").

output "region" {
  description = "AWS region of the deployment."
  value       = var.region
}

output "environment" {
  description = "Environment name."
  value       = var.environment
}

output "workflow_state_machine_arn" {
  description = "Workflow state machine: one execution per submitted workflow."
  value       = module.orchestration.workflow_state_machine_arn
}

output "task_state_machine_arn" {
  description = "Task state machine: one execution per task attempt chain."
  value       = module.orchestration.task_state_machine_arn
}

output "bucket_name" {
  description = "Bucket of definitions, plans and checkpoints."
  value       = module.storage.bucket_name
}

output "state_table_name" {
  description = "Workflow/task state table."
  value       = module.storage.state_table_name
}

output "checkpoint_table_name" {
  description = "Checkpoint table."
  value       = module.storage.checkpoint_table_name
}

output "spot_job_queue_arn" {
  description = "Spot job queue."
  value       = module.compute.job_queue_arns["spot"]
}

output "ondemand_job_queue_arn" {
  description = "On-Demand job queue."
  value       = module.compute.job_queue_arns["ondemand"]
}

output "mnp_job_queue_arn" {
  description = "On-Demand queue of multi-node parallel jobs (cluster placement group)."
  value       = module.compute.job_queue_arns["mnp"]
}

output "workflow_parser_function_name" {
  description = "Workflow parser Lambda (CLI dry runs)."
  value       = module.functions.function_names["workflow_parser"]
}

output "sns_topic_arn" {
  description = "Alerts topic."
  value       = module.monitoring.sns_topic_arn
}

output "batch_log_group_name" {
  description = "Log group of the Batch jobs."
  value       = module.compute.batch_log_group_name
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.monitoring.dashboard_name
}

output "gpu_spot_job_queue_arn" {
  description = "GPU Spot job queue (null when gpu_enabled is false)."
  value       = try(module.compute.job_queue_arns["gpu_spot"], null)
}

output "gpu_ondemand_job_queue_arn" {
  description = "GPU On-Demand job queue (null when gpu_enabled is false)."
  value       = try(module.compute.job_queue_arns["gpu_ondemand"], null)
}

output "spot_instance_types" {
  description = "Instance types of the Spot environment (the CLI's fit check)."
  value       = var.spot_instance_types
}

output "ondemand_instance_types" {
  description = "Instance types of the On-Demand environment."
  value       = var.ondemand_instance_types
}

output "mnp_instance_types" {
  description = "Instance types of the multi-node environment."
  value       = var.mnp_instance_types
}

output "gpu_instance_types" {
  description = "Instance types of the GPU environments (empty when gpu_enabled is false)."
  value       = var.gpu_enabled ? var.gpu_instance_types : []
}

output "mnp_max_nodes" {
  description = "Most nodes a multi-node task may ask."
  value       = var.mnp_max_nodes
}

output "shared_filesystem_enabled" {
  description = "Whether jobs mount the shared EFS file system (workflows with global_config.shared_filesystem need it)."
  value       = var.shared_filesystem_enabled
}

output "shared_mount_path" {
  description = "Where jobs see the shared file system (meaningful when shared_filesystem_enabled)."
  value       = var.shared_mount_path
}

output "agent_bundle_path" {
  description = "Path of the runner bundle inside every job container (host /opt/stepspot mounted read-only)."
  value       = module.compute.agent_bundle_path
}

output "input_bucket_arns" {
  description = "Buckets besides the deployment's own that jobs may read `uri` inputs from (the CLI refuses others)."
  value       = var.input_bucket_arns
}

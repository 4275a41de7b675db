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

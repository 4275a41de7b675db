output "compute_environment_names" {
  description = "Compute environment names by role (`spot`, `ondemand`, `mnp`; `gpu_spot`, `gpu_ondemand` when gpu_enabled)."
  value       = { for k, ce in aws_batch_compute_environment.this : k => ce.name }
}

output "compute_environment_arns" {
  description = "Compute environment ARNs by role."
  value       = { for k, ce in aws_batch_compute_environment.this : k => ce.arn }
}

output "job_queue_arns" {
  description = "Job queue ARNs by role (`spot`, `ondemand`, `mnp`; `gpu_spot`, `gpu_ondemand` when gpu_enabled)."
  value       = { for k, q in aws_batch_job_queue.this : k => q.arn }
}

output "job_queue_names" {
  description = "Job queue names by role."
  value       = { for k, q in aws_batch_job_queue.this : k => q.name }
}

output "job_definition_arn" {
  description = "Base single-node job definition (the attempt manager derives one revision per image)."
  value       = aws_batch_job_definition.container.arn
}

output "job_definition_name" {
  description = "Name of the base single-node job definition."
  value       = aws_batch_job_definition.container.name
}

output "mnp_job_definition_arn" {
  description = "Base multi-node parallel job definition."
  value       = aws_batch_job_definition.mnp.arn
}

output "mnp_job_definition_name" {
  description = "Name of the base multi-node parallel job definition."
  value       = aws_batch_job_definition.mnp.name
}

output "job_role_arn" {
  description = "Role of the job containers (the attempt manager passes it when it registers revisions)."
  value       = aws_iam_role.job.arn
}

output "batch_log_group_name" {
  description = "Log group of the job containers."
  value       = aws_cloudwatch_log_group.jobs.name
}

output "placement_group_name" {
  description = "Cluster placement group of the multi-node environment."
  value       = aws_placement_group.mnp.name
}

output "instance_types" {
  description = "Instance types by compute environment role (`spot`, `ondemand`, `mnp`, and `gpu_spot`, `gpu_ondemand` when GPUs are enabled)."
  value       = { for k, e in local.environments : k => e.instance_types }
}

output "agent_bundle_s3_uri" {
  description = "Where the runner bundle is stored (its key carries its sha256)."
  value       = "s3://${var.bucket_name}/${aws_s3_object.agent_bundle.key}"
}

output "agent_bundle_path" {
  description = "Path of the runner bundle on every host and inside every job container (mounted read-only)."
  value       = local.agent_bundle_path
}

output "shared_mount_path" {
  description = "Where jobs see the shared file system (null without one)."
  value       = var.shared_filesystem == null ? null : var.shared_mount_path
}

output "spot_compute_environment_names" {
  description = "Names of the Spot compute environments (`spot`, and `gpu_spot` when GPUs are enabled): whose instances get interruption notices."
  value       = [for k, ce in aws_batch_compute_environment.this : ce.name if local.environments[k].type == "SPOT"]
}

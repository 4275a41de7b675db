output "workflow_state_machine_arn" {
  description = "ARN of the workflow state machine."
  value       = aws_sfn_state_machine.this["workflow"].arn
}

output "task_state_machine_arn" {
  description = "ARN of the task state machine."
  value       = aws_sfn_state_machine.this["task"].arn
}

output "state_machine_names" {
  description = "State machine names by key (`workflow`, `task`)."
  value       = { for k, sm in aws_sfn_state_machine.this : k => sm.name }
}

output "role_arn" {
  description = "Execution role of both state machines."
  value       = aws_iam_role.this.arn
}

output "log_group_names" {
  description = "Log groups of the state machines by key."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

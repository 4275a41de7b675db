output "function_arns" {
  description = "Function ARNs by key."
  value       = { for k, f in aws_lambda_function.this : k => f.arn }
}

output "function_names" {
  description = "Function names by key."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "role_arns" {
  description = "Execution role ARNs by key."
  value       = { for k, r in aws_iam_role.this : k => r.arn }
}

output "log_group_names" {
  description = "Log group names by key."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "layer_arn" {
  description = "ARN of the dependencies layer version."
  value       = aws_lambda_layer_version.dependencies.arn
}

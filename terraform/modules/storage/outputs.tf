output "bucket_name" {
  description = "Name of the data/checkpoint bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the data/checkpoint bucket."
  value       = aws_s3_bucket.this.arn
}

output "state_table_name" {
  description = "Name of the workflow/task state table."
  value       = aws_dynamodb_table.this["state"].name
}

output "state_table_arn" {
  description = "ARN of the workflow/task state table."
  value       = aws_dynamodb_table.this["state"].arn
}

output "checkpoint_table_name" {
  description = "Name of the checkpoint table."
  value       = aws_dynamodb_table.this["checkpoint"].name
}

output "checkpoint_table_arn" {
  description = "ARN of the checkpoint table."
  value       = aws_dynamodb_table.this["checkpoint"].arn
}

output "kms_key_arn" {
  description = "ARN of the customer managed key that encrypts the project's data, logs and alerts."
  value       = aws_kms_key.this.arn
}

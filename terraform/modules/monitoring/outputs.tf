output "sns_topic_arn" {
  description = "ARN of the alerts topic."
  value       = aws_sns_topic.this.arn
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "event_rule_arns" {
  description = "EventBridge rule ARNs by key."
  value       = { for k, r in aws_cloudwatch_event_rule.this : k => r.arn }
}

output "dead_letter_queue_arn" {
  description = "SQS queue (KMS-encrypted) of the events EventBridge could not deliver."
  value       = aws_sqs_queue.dead_letters.arn
}

data "aws_caller_identity" "current" {}

locals {
  # EventBridge rules by key: what to match and which function handles it.
  rules = {
    spot-interruption = {
      description = "EC2 Spot two-minute interruption warning"
      pattern     = { source = ["aws.ec2"], detail-type = ["EC2 Spot Instance Interruption Warning"] }
      function    = var.interruption_handler
    }
    rebalance-recommendation = {
      description = "EC2 instance rebalance recommendation (earlier, best-effort signal)"
      pattern     = { source = ["aws.ec2"], detail-type = ["EC2 Instance Rebalance Recommendation"] }
      function    = var.interruption_handler
    }
    batch-job-state = {
      description = "Batch job state changes on the stepspot queues"
      # SUBMITTED, PENDING and STARTING tell the monitor nothing it records: leaving them out saves a
      # Lambda invocation per job and state (the local event bus routes the same statuses).
      pattern = {
        source      = ["aws.batch"]
        detail-type = ["Batch Job State Change"]
        detail      = { jobQueue = var.job_queue_arns, status = ["RUNNABLE", "RUNNING", "SUCCEEDED", "FAILED"] }
      }
      function = var.workflow_monitor
    }
    execution-status = {
      description = "Step Functions execution status changes of the stepspot workflow state machine"
      pattern = {
        source      = ["aws.states"]
        detail-type = ["Step Functions Execution Status Change"]
        detail      = { stateMachineArn = [var.state_machine_arns["workflow"]], status = ["FAILED", "TIMED_OUT", "ABORTED", "SUCCEEDED"] }
      }
      function = var.workflow_monitor
    }
    # A task execution that succeeded has already told the scheduler: only the abnormal ends (a lost
    # callback) need the monitor, which saves a Lambda invocation and a dedup claim per task.
    task-execution-status = {
      description = "Step Functions task executions of stepspot that ended abnormally"
      pattern = {
        source      = ["aws.states"]
        detail-type = ["Step Functions Execution Status Change"]
        detail      = { stateMachineArn = [var.state_machine_arns["task"]], status = ["FAILED", "TIMED_OUT", "ABORTED"] }
      }
      function = var.workflow_monitor
    }
  }

}

################################################################################
# Alerts topic
################################################################################

resource "aws_sns_topic" "this" {
  name              = "${var.name_prefix}-alerts"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "this" {
  arn    = aws_sns_topic.this.arn
  policy = data.aws_iam_policy_document.topic.json
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.this.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

################################################################################
# EventBridge -> Lambda
################################################################################

resource "aws_cloudwatch_event_rule" "this" {
  for_each = local.rules

  name          = "${var.name_prefix}-${each.key}"
  description   = each.value.description
  event_pattern = jsonencode(each.value.pattern)
  tags          = var.tags
}

# Events EventBridge could not deliver after its retries (Lambda throttled or failing for an hour)
# land here instead of vanishing; the alarm below says so.
resource "aws_sqs_queue" "dead_letters" {
  name                      = "${var.name_prefix}-event-dead-letters"
  kms_master_key_id         = var.kms_key_arn
  message_retention_seconds = 1209600
  tags                      = var.tags
}

data "aws_iam_policy_document" "dead_letters" {
  statement {
    sid       = "EventBridgeDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [for r in aws_cloudwatch_event_rule.this : r.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "dead_letters" {
  queue_url = aws_sqs_queue.dead_letters.id
  policy    = data.aws_iam_policy_document.dead_letters.json
}

resource "aws_cloudwatch_event_target" "this" {
  for_each = local.rules

  rule      = aws_cloudwatch_event_rule.this[each.key].name
  target_id = "lambda"
  arn       = each.value.function.arn

  # The handlers are idempotent on the event id, so redelivery is safe.
  retry_policy {
    maximum_event_age_in_seconds = var.event_max_age_seconds
    maximum_retry_attempts       = var.event_max_retry_attempts
  }

  dead_letter_config {
    arn = aws_sqs_queue.dead_letters.arn
  }
}

resource "aws_lambda_permission" "this" {
  for_each = local.rules

  statement_id  = "events-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = each.value.function.name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.this[each.key].arn
}

################################################################################
# Dashboard and alarms
################################################################################

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name_prefix
  dashboard_body = var.dashboard_body
}

resource "aws_cloudwatch_metric_alarm" "workflow_failures" {
  alarm_name          = "${var.name_prefix}-workflow-failures"
  alarm_description   = "A workflow execution failed, timed out or was aborted."
  namespace           = "AWS/States"
  metric_name         = "ExecutionsFailed"
  dimensions          = { StateMachineArn = var.state_machine_arns["workflow"] }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]
  tags                = var.tags
}

# The checkpoint agent runs in the job container without Powertools: it prints one JSON line per failed
# save, and this filter counts them as CheckpointsFailed with the same {environment} dimension the
# Lambdas' EMF metrics carry (alarm "checkpoints-failing").
resource "aws_cloudwatch_log_metric_filter" "checkpoints_failed" {
  name           = "${var.name_prefix}-checkpoints-failed"
  log_group_name = var.batch_log_group_name
  pattern        = "{ $.stepspot_event = \"checkpoint_failed\" }"

  metric_transformation {
    name       = "CheckpointsFailed"
    namespace  = var.metric_namespace
    value      = "1"
    unit       = "Count"
    dimensions = { environment = "$.environment" }
  }
}

# The same for a checkpointed task whose checkpoint directory stayed empty for two intervals: the agent
# prints one checkpoint_empty line per attempt (alarm "checkpoints-empty").
resource "aws_cloudwatch_log_metric_filter" "checkpoints_empty" {
  name           = "${var.name_prefix}-checkpoints-empty"
  log_group_name = var.batch_log_group_name
  pattern        = "{ $.stepspot_event = \"checkpoint_empty\" }"

  metric_transformation {
    name       = "CheckpointsEmpty"
    namespace  = var.metric_namespace
    value      = "1"
    unit       = "Count"
    dimensions = { environment = "$.environment" }
  }
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.name_prefix}-event-dead-letters"
  alarm_description   = "EventBridge could not deliver events to a stepspot Lambda (messages in ${aws_sqs_queue.dead_letters.name}): tasks may miss status changes or interruption notices."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letters.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "stepspot" {
  for_each = var.metric_alarms

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.description
  namespace           = var.metric_namespace
  metric_name         = each.value.metric
  dimensions          = { environment = var.environment }
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = 1
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  ok_actions          = [aws_sns_topic.this.arn]
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each = var.function_names

  alarm_name          = "${var.name_prefix}-${replace(each.key, "_", "-")}-errors"
  alarm_description   = "The ${each.key} Lambda raised errors (see its log group)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.this.arn]
  tags                = var.tags
}

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
  mock_resource "aws_sqs_queue" {
    override_during = plan
    defaults        = { arn = "arn:aws:sqs:eu-west-1:123456789012:stepspot-test-event-dead-letters" }
  }
}

variables {
  name_prefix          = "stepspot-test"
  environment          = "test"
  kms_key_arn          = "arn:aws:kms:eu-west-1:123456789012:key/test"
  interruption_handler = { arn = "arn:aws:lambda:eu-west-1:123456789012:function:ih", name = "ih" }
  workflow_monitor     = { arn = "arn:aws:lambda:eu-west-1:123456789012:function:wm", name = "wm" }
  state_machine_arns   = { workflow = "arn:aws:states:eu-west-1:123456789012:stateMachine:wf", task = "arn:aws:states:eu-west-1:123456789012:stateMachine:task" }
  job_queue_arns       = ["arn:aws:batch:eu-west-1:123456789012:job-queue/spot"]
  function_names       = { scheduler = "stepspot-test-scheduler" }
  batch_log_group_name = "/aws/batch/stepspot-test"
  dashboard_body       = "{\"widgets\": []}"
  metric_alarms = {
    spot-interruptions  = { metric = "SpotInterruptions", statistic = "Sum", period = 3600, threshold = 10, description = "Spot" }
    checkpoints-failing = { metric = "CheckpointsFailed", statistic = "Sum", period = 300, threshold = 1, description = "Checkpoints" }
    checkpoints-empty   = { metric = "CheckpointsEmpty", statistic = "Sum", period = 300, threshold = 1, description = "Empty" }
  }
}

run "events_reach_the_right_functions" {
  command = plan

  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.this["spot-interruption"].event_pattern)["detail-type"] == ["EC2 Spot Instance Interruption Warning"]
    error_message = "Spot interruption warnings are matched."
  }

  assert {
    condition     = aws_cloudwatch_event_target.this["spot-interruption"].arn == var.interruption_handler.arn && aws_cloudwatch_event_target.this["batch-job-state"].arn == var.workflow_monitor.arn
    error_message = "Interruptions go to the interruption handler, job changes to the monitor."
  }

  assert {
    condition     = alltrue([for p in aws_lambda_permission.this : p.principal == "events.amazonaws.com"])
    error_message = "EventBridge may invoke the targets."
  }

  assert {
    condition     = length(aws_sns_topic_subscription.email) == 0 && aws_sns_topic.this.kms_master_key_id == var.kms_key_arn
    error_message = "The topic is encrypted; no subscription without an address."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.stepspot["spot-interruptions"].dimensions == tomap({ environment = "test" }) && aws_cloudwatch_metric_alarm.stepspot["spot-interruptions"].namespace == "Stepspot"
    error_message = "Stepspot alarms use the namespace and environment dimension of the contract."
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.lambda_errors) == 1
    error_message = "One error alarm per function."
  }
}

run "agent_failure_lines_feed_the_checkpoints_failing_alarm" {
  command = plan

  assert {
    condition     = aws_cloudwatch_log_metric_filter.checkpoints_failed.log_group_name == "/aws/batch/stepspot-test" && aws_cloudwatch_log_metric_filter.checkpoints_failed.pattern == "{ $.stepspot_event = \"checkpoint_failed\" }"
    error_message = "The filter reads the agent's checkpoint_failed lines in the Batch job log group."
  }

  assert {
    condition     = aws_cloudwatch_log_metric_filter.checkpoints_failed.metric_transformation[0].name == aws_cloudwatch_metric_alarm.stepspot["checkpoints-failing"].metric_name && aws_cloudwatch_log_metric_filter.checkpoints_failed.metric_transformation[0].namespace == aws_cloudwatch_metric_alarm.stepspot["checkpoints-failing"].namespace
    error_message = "The filter publishes the metric and namespace the checkpoints-failing alarm reads."
  }

  assert {
    condition     = aws_cloudwatch_log_metric_filter.checkpoints_failed.metric_transformation[0].dimensions == tomap({ environment = "$.environment" }) && aws_cloudwatch_metric_alarm.stepspot["checkpoints-failing"].dimensions == tomap({ environment = "test" })
    error_message = "The filter's only dimension is environment, as the alarm expects."
  }
}

run "agent_empty_directory_lines_feed_the_checkpoints_empty_alarm" {
  command = plan

  assert {
    condition     = aws_cloudwatch_log_metric_filter.checkpoints_empty.log_group_name == "/aws/batch/stepspot-test" && aws_cloudwatch_log_metric_filter.checkpoints_empty.pattern == "{ $.stepspot_event = \"checkpoint_empty\" }"
    error_message = "The filter reads the agent's checkpoint_empty lines in the Batch job log group."
  }

  assert {
    condition     = aws_cloudwatch_log_metric_filter.checkpoints_empty.metric_transformation[0].name == aws_cloudwatch_metric_alarm.stepspot["checkpoints-empty"].metric_name && aws_cloudwatch_log_metric_filter.checkpoints_empty.metric_transformation[0].namespace == aws_cloudwatch_metric_alarm.stepspot["checkpoints-empty"].namespace
    error_message = "The filter publishes the metric and namespace the checkpoints-empty alarm reads."
  }

  assert {
    condition     = aws_cloudwatch_log_metric_filter.checkpoints_empty.metric_transformation[0].dimensions == tomap({ environment = "$.environment" })
    error_message = "The filter's only dimension is environment, as the alarm expects."
  }
}

run "subscribes_an_email_on_request" {
  command = plan

  variables {
    alarm_email = "hpc-team@example.org"
  }

  assert {
    condition     = aws_sns_topic_subscription.email[0].endpoint == "hpc-team@example.org"
    error_message = "The address is subscribed."
  }
}

run "rejects_bad_email" {
  command = plan

  variables {
    alarm_email = "not-an-address"
  }

  expect_failures = [var.alarm_email]
}

run "rejects_non_dashboard_json" {
  command = plan

  variables {
    dashboard_body = "{}"
  }

  expect_failures = [var.dashboard_body]
}

run "undeliverable_events_go_to_an_encrypted_dead_letter_queue" {
  command = plan

  assert {
    condition = alltrue([for t in aws_cloudwatch_event_target.this :
      t.dead_letter_config[0].arn == "arn:aws:sqs:eu-west-1:123456789012:stepspot-test-event-dead-letters"
    && t.retry_policy[0].maximum_retry_attempts == 8 && t.retry_policy[0].maximum_event_age_in_seconds == 3600])
    error_message = "Every target has a retry policy and the dead-letter queue."
  }

  assert {
    condition     = aws_sqs_queue.dead_letters.kms_master_key_id == var.kms_key_arn
    error_message = "The dead-letter queue is encrypted with the project's key."
  }

  assert {
    condition = anytrue([for st in data.aws_iam_policy_document.dead_letters.statement :
    contains(st.actions, "sqs:SendMessage") && anytrue([for p in st.principals : contains(p.identifiers, "events.amazonaws.com")])])
    error_message = "EventBridge may send to the dead-letter queue."
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.dead_letters.metric_name == "ApproximateNumberOfMessagesVisible" && aws_cloudwatch_metric_alarm.dead_letters.namespace == "AWS/SQS"
    error_message = "Dead letters raise an alarm."
  }
}

run "rejects_event_age_beyond_eventbridge_limits" {
  command = plan

  variables {
    event_max_age_seconds = 30
  }

  expect_failures = [var.event_max_age_seconds]
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.region

  state_machines = {
    workflow = { name = "${var.name_prefix}-workflow", template = var.workflow_definition_template }
    task     = { name = "${var.name_prefix}-task", template = var.task_definition_template }
  }

  # Built from the name, not the resource: the scheduler (STEPSPOT_TASK_STATE_MACHINE_ARN) needs the
  # task state machine's ARN before the state machine exists.
  task_state_machine_arn = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${local.state_machines.task.name}"
  batch_arn_prefix       = "arn:${local.partition}:batch:${local.region}:${local.account_id}"

  # templatefile() refuses a placeholder without a value but not a value without a placeholder: a
  # variable neither template uses is a contract drift, refused below.
  template_texts = join("\n", [for machine in local.state_machines : file(machine.template)])
  unused_definition_variables = sort([
    for name in keys(var.definition_variables) : name if !strcontains(local.template_texts, "$${${name}}")
  ])
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.state_machines

  name              = "/aws/vendedlogs/states/${each.value.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

################################################################################
# Role: exactly what the definitions do
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name_prefix        = "${var.name_prefix}-states-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "InvokeFunctions"
    actions   = ["lambda:InvokeFunction"]
    resources = concat(var.lambda_function_arns, [for arn in var.lambda_function_arns : "${arn}:*"])
  }

  statement {
    sid     = "SubmitJobs"
    actions = ["batch:SubmitJob"]
    resources = concat(
      var.job_queue_arns,
      [for name in var.job_definition_names : "${local.batch_arn_prefix}:job-definition/${name}*"],
    )
  }

  # SubmitJob with tags (stepspot:workflow/task/attempt/environment) also needs TagResource on the new job.
  # Batch has no CreateAction condition key (unlike ec2:/ecs:CreateAction): a condition on one would
  # never match and deny every tagged submission. The tag keys are what a request can be held to.
  statement {
    sid       = "TagJobsOnSubmit"
    actions   = ["batch:TagResource"]
    resources = ["${local.batch_arn_prefix}:job/*"]

    condition {
      test     = "ForAllValues:StringLike"
      variable = "aws:TagKeys"
      values   = ["stepspot:*"]
    }
  }

  statement {
    sid       = "StopJobs"
    actions   = ["batch:TerminateJob"]
    resources = ["${local.batch_arn_prefix}:job/*"]
  }

  # DescribeJobs has no resource-level permissions.
  statement {
    sid       = "WatchJobs"
    actions   = ["batch:DescribeJobs"]
    resources = ["*"]
  }

  # The `.sync` integration waits on this managed EventBridge rule.
  statement {
    sid       = "SyncManagedRule"
    actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
    resources = ["arn:${local.partition}:events:${local.region}:${local.account_id}:rule/StepFunctionsGetEventsForBatchJobsRule"]
  }

  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    resources = ["*"]
  }

  # Log delivery actions have no resource-level permissions (vended logs).
  statement {
    sid = "LogDelivery"
    actions = [
      "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "stepspot-state-machines"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

################################################################################
# State machines
################################################################################

resource "aws_sfn_state_machine" "this" {
  for_each = local.state_machines

  name       = each.value.name
  type       = "STANDARD"
  role_arn   = aws_iam_role.this.arn
  definition = templatefile(each.value.template, var.definition_variables)

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.this[each.key].arn}:*"
    include_execution_data = var.include_execution_data
    level                  = var.log_level
  }

  tracing_configuration {
    enabled = true
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = length(local.unused_definition_variables) == 0
      error_message = "definition_variables ${join(", ", local.unused_definition_variables)} are used by neither state machine template: pass only the names in build/asl/variables.json (docs/contracts.md \"ASL template variables\")."
    }
  }

  depends_on = [aws_iam_role_policy.this]
}

locals {
  function_names = { for k, f in var.functions : k => "${var.name_prefix}-${replace(k, "_", "-")}" }
}

resource "aws_lambda_layer_version" "dependencies" {
  layer_name               = "${var.name_prefix}-dependencies"
  description              = "stepspot runtime dependencies (manylinux wheels)"
  filename                 = var.layer_zip_path
  source_code_hash         = var.layer_zip_hash
  compatible_runtimes      = [var.runtime]
  compatible_architectures = ["x86_64"]
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.function_names

  name              = "/aws/lambda/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

################################################################################
# One role per function: its own statements plus logs, X-Ray and the KMS key
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.function_names

  name_prefix        = "${substr(each.value, 0, 32)}-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "this" {
  for_each = var.functions

  dynamic "statement" {
    for_each = each.value.statements

    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
    }
  }

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[each.key].arn}:*"]
  }

  # X-Ray has no resource-level permissions for these actions.
  statement {
    sid       = "Tracing"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }

  statement {
    sid       = "EncryptedData"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "this" {
  for_each = var.functions

  name   = "stepspot-${replace(each.key, "_", "-")}"
  role   = aws_iam_role.this[each.key].id
  policy = data.aws_iam_policy_document.this[each.key].json
}

################################################################################
# Functions
################################################################################

resource "aws_lambda_function" "this" {
  for_each = var.functions

  # checkov:skip=CKV_AWS_116:Callers own the retries: Step Functions Retry/Catch and EventBridge retry policies; a DLQ would hide failures from them.
  # checkov:skip=CKV_AWS_117:The functions call only AWS APIs; a VPC would add NAT cost and cold-start latency without isolating anything.
  # checkov:skip=CKV_AWS_272:Code signing needs a Signer profile the build cannot produce offline; integrity comes from the content hash of the deterministic zip.
  # checkov:skip=CKV_AWS_115:Concurrency is bounded by the callers (one task execution per task); a reserved limit would throttle large workflows.
  function_name    = local.function_names[each.key]
  description      = each.value.description
  role             = aws_iam_role.this[each.key].arn
  handler          = each.value.handler
  runtime          = var.runtime
  architectures    = ["x86_64"]
  filename         = var.package_zip_path
  source_code_hash = var.package_zip_hash
  layers           = [aws_lambda_layer_version.dependencies.arn]
  timeout          = each.value.timeout
  memory_size      = each.value.memory_size
  kms_key_arn      = var.kms_key_arn

  environment {
    variables = merge(var.common_environment, each.value.environment)
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this[each.key].name
    application_log_level = var.log_level
    system_log_level      = "WARN"
  }

  tags = merge(var.tags, { function = each.key })

  depends_on = [aws_iam_role_policy.this]
}

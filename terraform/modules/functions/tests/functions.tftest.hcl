mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
}

variables {
  name_prefix      = "stepspot-test"
  package_zip_path = "stepspot.zip"
  package_zip_hash = "cGFja2FnZQ=="
  layer_zip_path   = "dependencies.zip"
  layer_zip_hash   = "bGF5ZXI="
  kms_key_arn      = "arn:aws:kms:eu-west-1:123456789012:key/test"
  common_environment = {
    STEPSPOT_ENVIRONMENT = "test"
  }
  functions = {
    workflow_parser = {
      handler     = "stepspot.handlers.workflow_parser.lambda_handler"
      description = "parser"
      environment = { STEPSPOT_BUCKET = "bucket" }
      statements = [{
        sid       = "Plans"
        actions   = ["s3:PutObject"]
        resources = ["arn:aws:s3:::bucket/workflows/*"]
      }]
    }
    scheduler = {
      handler     = "stepspot.handlers.scheduler.lambda_handler"
      description = "scheduler"
      timeout     = 120
    }
  }
}

run "one_function_role_and_log_group_per_key" {
  command = plan

  assert {
    condition     = length(aws_lambda_function.this) == 2 && length(aws_iam_role.this) == 2 && length(aws_cloudwatch_log_group.this) == 2
    error_message = "Each function has its own role and log group."
  }

  assert {
    condition     = aws_lambda_function.this["workflow_parser"].function_name == "stepspot-test-workflow-parser" && aws_lambda_function.this["workflow_parser"].handler == "stepspot.handlers.workflow_parser.lambda_handler"
    error_message = "Names and handlers follow the keys."
  }

  assert {
    condition     = aws_lambda_function.this["scheduler"].tracing_config[0].mode == "Active"
    error_message = "Tracing is on."
  }

  assert {
    condition     = aws_lambda_function.this["workflow_parser"].environment[0].variables == tomap({ STEPSPOT_ENVIRONMENT = "test", STEPSPOT_BUCKET = "bucket" })
    error_message = "Common and per-function environment are merged."
  }

  assert {
    condition     = aws_lambda_function.this["scheduler"].source_code_hash == "cGFja2FnZQ==" && aws_lambda_function.this["scheduler"].runtime == "python3.12"
    error_message = "Code comes from the hashed package zip."
  }

  assert {
    condition     = aws_cloudwatch_log_group.this["scheduler"].name == "/aws/lambda/stepspot-test-scheduler" && aws_cloudwatch_log_group.this["scheduler"].retention_in_days == 30
    error_message = "Log groups have the Lambda name and a retention."
  }
}

run "rejects_wildcard_actions" {
  command = plan

  variables {
    functions = {
      scheduler = {
        handler     = "stepspot.handlers.scheduler.lambda_handler"
        description = "scheduler"
        statements  = [{ sid = "TooMuch", actions = ["dynamodb:*"], resources = ["*"] }]
      }
    }
  }

  expect_failures = [var.functions]
}

run "rejects_handler_outside_the_package" {
  command = plan

  variables {
    functions = {
      scheduler = {
        handler     = "app.handler"
        description = "scheduler"
      }
    }
  }

  expect_failures = [var.functions]
}

run "rejects_bad_log_level" {
  command = plan

  variables {
    log_level = "LOUD"
  }

  expect_failures = [var.log_level]
}

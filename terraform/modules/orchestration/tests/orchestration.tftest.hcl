mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { region = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
}

variables {
  name_prefix                  = "stepspot-test"
  workflow_definition_template = "../../../tests/terraform/fixtures/workflow.asl.json"
  task_definition_template     = "../../../tests/terraform/fixtures/task.asl.json"
  kms_key_arn                  = "arn:aws:kms:eu-west-1:123456789012:key/test"
  lambda_function_arns         = ["arn:aws:lambda:eu-west-1:123456789012:function:parser"]
  job_queue_arns               = ["arn:aws:batch:eu-west-1:123456789012:job-queue/spot"]
  job_definition_names         = ["stepspot-test-container"]
  definition_variables = {
    workflow_parser_arn    = "arn:aws:lambda:eu-west-1:123456789012:function:parser"
    scheduler_arn          = "arn:aws:lambda:eu-west-1:123456789012:function:scheduler"
    checkpoint_manager_arn = "arn:aws:lambda:eu-west-1:123456789012:function:checkpoints"
    attempt_manager_arn    = "arn:aws:lambda:eu-west-1:123456789012:function:attempts"
  }
}

run "definitions_are_filled_from_the_templates" {
  command = plan

  assert {
    condition     = jsondecode(aws_sfn_state_machine.this["workflow"].definition).States.ParseWorkflow.Parameters.FunctionName == "arn:aws:lambda:eu-west-1:123456789012:function:parser"
    error_message = "Placeholders are replaced with the ARNs."
  }

  assert {
    condition     = jsondecode(aws_sfn_state_machine.this["task"].definition).States.RunJob.Resource == "arn:aws:states:::batch:submitJob.sync"
    error_message = "The task definition comes from its own template."
  }

  assert {
    condition     = aws_sfn_state_machine.this["task"].name == "stepspot-test-task" && aws_sfn_state_machine.this["task"].type == "STANDARD"
    error_message = "The task state machine name matches the ARN built in locals."
  }

  assert {
    condition     = local.task_state_machine_arn == "arn:aws:states:eu-west-1:123456789012:stateMachine:stepspot-test-task"
    error_message = "The task state machine ARN is built from its name."
  }

  assert {
    condition     = aws_cloudwatch_log_group.this["workflow"].name == "/aws/vendedlogs/states/stepspot-test-workflow"
    error_message = "Logs go to /aws/vendedlogs/states/<name>."
  }

  assert {
    condition     = aws_sfn_state_machine.this["workflow"].tracing_configuration[0].enabled && aws_sfn_state_machine.this["workflow"].logging_configuration[0].level == "ERROR"
    error_message = "Tracing and logging are on."
  }
}

run "rejects_bad_log_level" {
  command = plan

  variables {
    log_level = "VERBOSE"
  }

  expect_failures = [var.log_level]
}

run "role_grants_no_unused_start_execution" {
  command = plan

  # The definitions start no execution (the scheduler Lambda does, with its own role).
  assert {
    condition     = !anytrue([for st in data.aws_iam_policy_document.this.statement : contains(st.actions, "states:StartExecution")])
    error_message = "The state machine role does not grant states:StartExecution."
  }
}

run "refuses_a_variable_no_template_uses" {
  command = plan

  # Terraform once passed ten variables to templates that use four (issue 17).
  variables {
    definition_variables = {
      workflow_parser_arn    = "arn:aws:lambda:eu-west-1:123456789012:function:parser"
      scheduler_arn          = "arn:aws:lambda:eu-west-1:123456789012:function:scheduler"
      checkpoint_manager_arn = "arn:aws:lambda:eu-west-1:123456789012:function:checkpoints"
      attempt_manager_arn    = "arn:aws:lambda:eu-west-1:123456789012:function:attempts"
      job_definition_arn     = "arn:aws:batch:eu-west-1:123456789012:job-definition/stepspot-test-container"
    }
  }

  expect_failures = [aws_sfn_state_machine.this]
}

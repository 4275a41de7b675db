data "aws_partition" "current" {}

################################################################################
# Instance role: the ECS agent on each instance
################################################################################

data "aws_iam_policy_document" "instance_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  name_prefix        = "${var.name_prefix}-batch-ec2-"
  assume_role_policy = data.aws_iam_policy_document.instance_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "instance" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
}

# The user data downloads the runner bundle: exactly that object, and the key that encrypts it.
data "aws_iam_policy_document" "instance" {
  statement {
    sid       = "RunnerBundle"
    actions   = ["s3:GetObject"]
    resources = ["${var.bucket_arn}/${local.agent_bundle_key}"]
  }

  statement {
    sid       = "DecryptRunnerBundle"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "instance" {
  name   = "stepspot-runner-bundle"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.instance.json
}

resource "aws_iam_instance_profile" "instance" {
  name_prefix = "${var.name_prefix}-batch-ec2-"
  role        = aws_iam_role.instance.name
  tags        = var.tags
}

################################################################################
# Job role: what the checkpoint agent in the container may do
################################################################################

data "aws_iam_policy_document" "job_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "job" {
  name_prefix        = "${var.name_prefix}-batch-job-"
  assume_role_policy = data.aws_iam_policy_document.job_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "job" {
  statement {
    sid       = "CheckpointObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${var.bucket_arn}/checkpoints/*"]
  }

  # Staged data: inputs from the producers' published outputs, this task's outputs and manifest.
  statement {
    sid       = "RunObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${var.bucket_arn}/runs/*"]
  }

  # ListObjectsV2 under the two prefixes only. The agent makes no HeadBucket call: S3 authorises it
  # as s3:ListBucket without any s3:prefix, which this condition (rightly) denies.
  statement {
    sid       = "ListCheckpointsAndRuns"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["checkpoints/*", "runs/*"]
    }
  }

  # `uri` inputs from the buckets the deployment names (input_bucket_arns), read only.
  dynamic "statement" {
    for_each = length(var.input_bucket_arns) > 0 ? [1] : []

    content {
      sid       = "ReadInputObjects"
      actions   = ["s3:GetObject"]
      resources = [for arn in var.input_bucket_arns : "${arn}/*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.input_bucket_arns) > 0 ? [1] : []

    content {
      sid       = "ListInputBuckets"
      actions   = ["s3:ListBucket"]
      resources = var.input_bucket_arns
    }
  }

  statement {
    sid       = "CheckpointIndex"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"]
    resources = [var.checkpoint_table_arn]
  }

  # The agent refuses to run for a workflow the state table does not know (STEPSPOT_STATE_TABLE).
  statement {
    sid       = "WorkflowExists"
    actions   = ["dynamodb:GetItem"]
    resources = [var.state_table_arn]
  }

  statement {
    sid       = "EncryptedData"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  # The shared file system, only through its access point (the job definitions mount with IAM auth).
  dynamic "statement" {
    for_each = var.shared_filesystem == null ? [] : [var.shared_filesystem]

    content {
      sid       = "SharedFileSystem"
      actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
      resources = [statement.value.file_system_arn]

      condition {
        test     = "StringEquals"
        variable = "elasticfilesystem:AccessPointArn"
        values   = [statement.value.access_point_arn]
      }
    }
  }
}

resource "aws_iam_role_policy" "job" {
  name   = "stepspot-job"
  role   = aws_iam_role.job.id
  policy = data.aws_iam_policy_document.job.json
}

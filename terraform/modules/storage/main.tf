data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id  = data.aws_caller_identity.current.account_id
  partition   = data.aws_partition.current.partition
  region      = data.aws_region.current.region
  bucket_name = coalesce(var.bucket_name, "${var.name_prefix}-${local.account_id}-${local.region}")

  # Both tables share the key grammar of docs/contracts.md: pk/sk strings, TTL on expires_at.
  tables = {
    state      = "${var.name_prefix}-state"
    checkpoint = "${var.name_prefix}-checkpoints"
  }
}

################################################################################
# KMS key: one customer managed key encrypts the bucket, tables, logs and topic
################################################################################

data "aws_iam_policy_document" "kms" {
  # checkov:skip=CKV_AWS_109:In a key policy "*" means this key only; administration stays with the account.
  # checkov:skip=CKV_AWS_111:In a key policy "*" means this key only; service principals are limited by conditions.
  # checkov:skip=CKV_AWS_356:In a key policy "*" means this key only.
  # Key administration and use through IAM policies stay with the account (explicit actions:
  # the usual "kms:*" grant would be a wildcard).
  statement {
    sid = "AccountAdministersAndDelegatesToIam"
    actions = [
      "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:CreateGrant", "kms:Decrypt", "kms:DeleteAlias",
      "kms:DescribeKey", "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey",
      "kms:EnableKeyRotation", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
      "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants",
      "kms:ListKeyPolicies", "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:ReEncryptFrom",
      "kms:ReEncryptTo", "kms:RetireGrant", "kms:RevokeGrant", "kms:ScheduleKeyDeletion",
      "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
    ]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # CloudWatch Logs encrypts the project's log groups (Lambda, Batch, Step Functions) with the key.
  statement {
    sid       = "CloudWatchLogsEncryptsLogGroups"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  # EventBridge sends undeliverable events to the encrypted dead-letter queue (module monitoring).
  statement {
    sid       = "EventBridgeWritesEncryptedDeadLetters"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  # CloudWatch alarms publish to the encrypted SNS topic.
  statement {
    sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${var.name_prefix}: data, checkpoints, tables, logs and alerts"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.this.key_id
}

################################################################################
# S3 bucket: definitions, plans and checkpoints (layout in docs/contracts.md)
################################################################################

resource "aws_s3_bucket" "this" {
  # checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket per account; enable it account-wide (CloudTrail data events) instead.
  # checkov:skip=CKV_AWS_144:Checkpoints are regenerable scratch state; cross-region replication would double the cost for no recovery gain.
  # checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications: the checkpoint table is the index.
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    # The bucket key cuts KMS requests (and cost) for the many small checkpoint files.
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "checkpoints"
    status = "Enabled"

    filter {
      prefix = "checkpoints/"
    }

    transition {
      days          = var.checkpoint_transition_days
      storage_class = var.checkpoint_cold_storage_class
    }

    expiration {
      days = var.checkpoint_retention_days
    }
  }

  rule {
    id     = "housekeeping"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
  }

  # Lifecycle rules on a bucket without versioning status yet fail intermittently.
  depends_on = [aws_s3_bucket_versioning.this]

  lifecycle {
    precondition {
      condition     = var.checkpoint_transition_days < var.checkpoint_retention_days
      error_message = "checkpoint_transition_days must be lower than checkpoint_retention_days."
    }
    # S3 refuses a transition to STANDARD_IA or ONEZONE_IA before an object is 30 days old
    # (PutBucketLifecycleConfiguration fails: the apply would stop half-way).
    precondition {
      condition     = !contains(["STANDARD_IA", "ONEZONE_IA"], var.checkpoint_cold_storage_class) || var.checkpoint_transition_days >= 30
      error_message = "checkpoint_transition_days must be at least 30 for ${var.checkpoint_cold_storage_class} (S3's minimum for that class); raise it or use GLACIER_IR or INTELLIGENT_TIERING."
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  # A Deny on every action is the point of this statement: no request without TLS gets through.
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json

  # Public access block first, or the policy call can race it.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

################################################################################
# DynamoDB tables: workflow/task state and checkpoints
################################################################################

resource "aws_dynamodb_table" "this" {
  for_each = local.tables

  name                        = each.value
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.enable_deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  tags = merge(var.tags, { table = each.key })
}

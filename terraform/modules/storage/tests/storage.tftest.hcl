mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { region = "eu-west-1" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
}

variables {
  name_prefix = "stepspot-test"
  tags        = { component = "storage" }
}

run "bucket_and_tables_follow_the_contract" {
  command = plan

  assert {
    condition     = aws_s3_bucket.this.bucket == "stepspot-test-123456789012-eu-west-1"
    error_message = "The bucket name is derived from prefix, account and region."
  }

  assert {
    condition     = alltrue([for t in aws_dynamodb_table.this : t.hash_key == "pk" && t.range_key == "sk"])
    error_message = "Both tables use pk/sk keys (docs/contracts.md)."
  }

  assert {
    condition     = alltrue([for t in aws_dynamodb_table.this : t.ttl[0].attribute_name == "expires_at" && t.ttl[0].enabled])
    error_message = "Both tables expire items on expires_at."
  }

  assert {
    condition     = alltrue([for t in aws_dynamodb_table.this : t.point_in_time_recovery[0].enabled && t.server_side_encryption[0].enabled])
    error_message = "Tables need point-in-time recovery and encryption."
  }

  assert {
    condition     = aws_dynamodb_table.this["state"].billing_mode == "PAY_PER_REQUEST"
    error_message = "Tables bill on demand."
  }

  assert {
    condition     = aws_s3_bucket_public_access_block.this.block_public_acls && aws_s3_bucket_public_access_block.this.restrict_public_buckets
    error_message = "The bucket blocks public access."
  }

  assert {
    condition     = aws_s3_bucket_versioning.this.versioning_configuration[0].status == "Enabled"
    error_message = "The bucket is versioned."
  }

  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.this.rule[0].transition[0].storage_class == "GLACIER_IR" && aws_s3_bucket_lifecycle_configuration.this.rule[0].expiration[0].days == 30
    error_message = "Checkpoints move to a colder class and expire after the retention."
  }

  assert {
    condition     = aws_kms_key.this.enable_key_rotation
    error_message = "The KMS key rotates."
  }
}

run "explicit_bucket_name_wins" {
  command = plan

  variables {
    bucket_name = "my-own-bucket"
  }

  assert {
    condition     = aws_s3_bucket.this.bucket == "my-own-bucket"
    error_message = "bucket_name overrides the derived name."
  }
}

run "rejects_bad_prefix" {
  command = plan

  variables {
    name_prefix = "Stepspot_Dev"
  }

  expect_failures = [var.name_prefix]
}

run "rejects_retention_out_of_range" {
  command = plan

  variables {
    checkpoint_retention_days = 0
  }

  expect_failures = [var.checkpoint_retention_days]
}

run "rejects_unknown_storage_class" {
  command = plan

  variables {
    checkpoint_cold_storage_class = "DEEP_FREEZE"
  }

  expect_failures = [var.checkpoint_cold_storage_class]
}

run "rejects_transition_after_expiry" {
  command = plan

  variables {
    checkpoint_transition_days = 40
    checkpoint_retention_days  = 30
  }

  expect_failures = [aws_s3_bucket_lifecycle_configuration.this]
}

run "rejects_an_infrequent_access_transition_before_30_days" {
  command = plan

  variables {
    checkpoint_cold_storage_class = "STANDARD_IA"
    checkpoint_transition_days    = 7
    checkpoint_retention_days     = 60
  }

  expect_failures = [aws_s3_bucket_lifecycle_configuration.this]
}

run "accepts_an_infrequent_access_transition_at_30_days" {
  command = plan

  variables {
    checkpoint_cold_storage_class = "ONEZONE_IA"
    checkpoint_transition_days    = 30
    checkpoint_retention_days     = 60
  }

  assert {
    condition     = aws_s3_bucket_lifecycle_configuration.this.rule[0].transition[0].storage_class == "ONEZONE_IA"
    error_message = "A 30-day transition to ONEZONE_IA is valid."
  }
}

run "rejects_short_kms_window" {
  command = plan

  variables {
    kms_deletion_window_days = 3
  }

  expect_failures = [var.kms_deletion_window_days]
}

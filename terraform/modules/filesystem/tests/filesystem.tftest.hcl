mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
  mock_resource "aws_efs_file_system" {
    override_during = plan
    defaults        = { id = "fs-1", arn = "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1" }
  }
  mock_resource "aws_efs_access_point" {
    override_during = plan
    defaults        = { id = "fsap-1", arn = "arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-1" }
  }
  mock_resource "aws_security_group" {
    override_during = plan
    defaults        = { id = "sg-fs" }
  }
}

variables {
  name_prefix              = "stepspot-test"
  vpc_id                   = "vpc-1"
  subnet_ids               = ["subnet-a", "subnet-b"]
  client_security_group_id = "sg-batch"
  kms_key_arn              = "arn:aws:kms:eu-west-1:123456789012:key/test"
  bucket_name              = "bucket"
}

run "nothing_by_default" {
  command = plan

  assert {
    condition     = length(aws_efs_file_system.this) == 0 && length(aws_fsx_lustre_file_system.this) == 0 && length(aws_security_group.efs) == 0
    error_message = "Both file systems are off by default."
  }

  assert {
    condition     = output.efs == null && output.fsx_lustre == null
    error_message = "The outputs say there is no file system."
  }
}

run "efs_is_encrypted_reachable_from_batch_only" {
  command = plan

  variables {
    efs_enabled = true
  }

  assert {
    condition     = aws_efs_file_system.this[0].encrypted == true && aws_efs_file_system.this[0].kms_key_id == var.kms_key_arn
    error_message = "The file system is encrypted with the project's key."
  }

  assert {
    condition     = length(aws_efs_mount_target.this) == 2 && toset([for mt in aws_efs_mount_target.this : mt.subnet_id]) == toset(var.subnet_ids)
    error_message = "One mount target in each private subnet."
  }

  assert {
    condition = (
      aws_vpc_security_group_ingress_rule.efs_nfs[0].from_port == 2049 && aws_vpc_security_group_ingress_rule.efs_nfs[0].to_port == 2049
      && aws_vpc_security_group_ingress_rule.efs_nfs[0].referenced_security_group_id == "sg-batch"
      && length(aws_vpc_security_group_ingress_rule.efs_nfs) == 1
    )
    error_message = "NFS is allowed only from the Batch instances' security group."
  }

  assert {
    condition     = aws_vpc_security_group_egress_rule.client_to_efs[0].security_group_id == "sg-batch" && aws_vpc_security_group_egress_rule.client_to_efs[0].from_port == 2049
    error_message = "The Batch instances may reach NFS."
  }

  assert {
    condition     = aws_efs_access_point.this[0].root_directory[0].path == "/stepspot" && aws_efs_access_point.this[0].posix_user[0].uid == 1000
    error_message = "Jobs enter through the access point with one POSIX identity."
  }

  assert {
    condition     = output.efs == { file_system_id = "fs-1", file_system_arn = "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1", access_point_id = "fsap-1", access_point_arn = "arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-1" }
    error_message = "The output gives the compute module what it mounts."
  }

  assert {
    condition = anytrue([for st in data.aws_iam_policy_document.efs[0].statement :
      st.effect == "Deny" && anytrue([for c in st.condition : c.variable == "aws:SecureTransport" && toset(c.values) == toset(["false"])])
    ])
    error_message = "The file system policy refuses clients without TLS."
  }
}

run "fsx_lustre_scratch_linked_to_the_bucket" {
  command = plan

  variables {
    fsx_lustre_enabled = true
  }

  assert {
    condition     = aws_fsx_lustre_file_system.this[0].deployment_type == "SCRATCH_2" && aws_fsx_lustre_file_system.this[0].import_path == "s3://bucket/runs/"
    error_message = "A scratch file system importing the bucket's runs/ prefix."
  }

  assert {
    condition     = alltrue([for r in aws_vpc_security_group_ingress_rule.fsx : contains(["sg-batch", "sg-fs"], r.referenced_security_group_id)]) && length(aws_vpc_security_group_ingress_rule.fsx) == 4
    error_message = "Lustre ports are open to the Batch instances and between the file servers only."
  }

  assert {
    condition     = length(aws_efs_file_system.this) == 0
    error_message = "FSx does not imply EFS."
  }
}

run "rejects_odd_fsx_capacity" {
  command = plan

  variables {
    fsx_lustre_enabled       = true
    fsx_storage_capacity_gib = 2000
  }

  expect_failures = [var.fsx_storage_capacity_gib]
}

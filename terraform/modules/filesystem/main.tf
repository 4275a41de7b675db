# The file systems the Batch jobs share. Reachable only from the Batch instances' security group.

locals {
  efs_count = var.efs_enabled ? 1 : 0
  fsx_count = var.fsx_lustre_enabled ? 1 : 0
}

################################################################################
# EFS: encrypted, one mount target per private subnet, one access point
################################################################################

resource "aws_security_group" "efs" {
  count = local.efs_count

  name_prefix = "${var.name_prefix}-efs-"
  description = "stepspot shared EFS: NFS from the Batch instances only"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name_prefix}-efs" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "efs_nfs" {
  count = local.efs_count

  security_group_id            = aws_security_group.efs[0].id
  description                  = "NFS from the Batch instances"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = var.client_security_group_id
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "client_to_efs" {
  count = local.efs_count

  security_group_id            = var.client_security_group_id
  description                  = "NFS to the shared EFS file system"
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
  referenced_security_group_id = aws_security_group.efs[0].id
  tags                         = var.tags
}

resource "aws_efs_file_system" "this" {
  count = local.efs_count

  creation_token   = "${var.name_prefix}-shared"
  encrypted        = true
  kms_key_id       = var.kms_key_arn
  performance_mode = "generalPurpose"
  throughput_mode  = var.efs_throughput_mode

  lifecycle_policy {
    transition_to_ia = "AFTER_30_DAYS"
  }

  tags = merge(var.tags, { Name = "${var.name_prefix}-shared" })
}

resource "aws_efs_backup_policy" "this" {
  count = local.efs_count

  file_system_id = aws_efs_file_system.this[0].id

  backup_policy {
    status = "ENABLED"
  }
}

# count, not for_each: subnet ids of a VPC created in the same apply are unknown at plan time.
resource "aws_efs_mount_target" "this" {
  count = var.efs_enabled ? length(var.subnet_ids) : 0

  file_system_id  = aws_efs_file_system.this[0].id
  subnet_id       = var.subnet_ids[count.index]
  security_groups = [aws_security_group.efs[0].id]
}

# Every job enters through this access point: one POSIX identity and one root directory, whatever
# user the image runs as.
resource "aws_efs_access_point" "this" {
  count = local.efs_count

  file_system_id = aws_efs_file_system.this[0].id

  posix_user {
    uid = var.posix_uid
    gid = var.posix_gid
  }

  root_directory {
    path = "/stepspot"

    creation_info {
      owner_uid   = var.posix_uid
      owner_gid   = var.posix_gid
      permissions = "0750"
    }
  }

  tags = merge(var.tags, { Name = "${var.name_prefix}-shared" })
}

# Clients must use TLS and the access point; the job role's policy (compute module) grants the mount.
data "aws_iam_policy_document" "efs" {
  count = local.efs_count

  statement {
    sid       = "DenyWithoutTls"
    effect    = "Deny"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"]
    resources = [aws_efs_file_system.this[0].arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOutsideTheAccessPoint"
    effect    = "Deny"
    actions   = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "elasticfilesystem:ClientRootAccess"]
    resources = [aws_efs_file_system.this[0].arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "elasticfilesystem:AccessPointArn"
      values   = [aws_efs_access_point.this[0].arn]
    }
  }
}

resource "aws_efs_file_system_policy" "this" {
  count = local.efs_count

  file_system_id = aws_efs_file_system.this[0].id
  policy         = data.aws_iam_policy_document.efs[0].json
}

################################################################################
# FSx for Lustre: optional scratch, lazily loaded from the bucket
################################################################################

resource "aws_security_group" "fsx" {
  count = local.fsx_count

  name_prefix = "${var.name_prefix}-fsx-"
  description = "stepspot FSx for Lustre: Lustre from the Batch instances and between the file servers"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name_prefix}-fsx" })

  lifecycle {
    create_before_destroy = true
  }
}

# Lustre: 988 and 1018-1023, from the clients and between the file system's own servers.
locals {
  lustre_ports = { lnet = [988, 988], ost = [1018, 1023] }
  fsx_ingress = var.fsx_lustre_enabled ? merge(
    { for k, p in local.lustre_ports : "clients-${k}" => { ports = p, source = var.client_security_group_id } },
    { for k, p in local.lustre_ports : "servers-${k}" => { ports = p, source = aws_security_group.fsx[0].id } },
  ) : {}
}

resource "aws_vpc_security_group_ingress_rule" "fsx" {
  for_each = local.fsx_ingress

  security_group_id            = aws_security_group.fsx[0].id
  description                  = "Lustre (${each.key})"
  ip_protocol                  = "tcp"
  from_port                    = each.value.ports[0]
  to_port                      = each.value.ports[1]
  referenced_security_group_id = each.value.source
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "fsx_servers" {
  for_each = var.fsx_lustre_enabled ? local.lustre_ports : {}

  security_group_id            = aws_security_group.fsx[0].id
  description                  = "Lustre between the file servers (${each.key})"
  ip_protocol                  = "tcp"
  from_port                    = each.value[0]
  to_port                      = each.value[1]
  referenced_security_group_id = aws_security_group.fsx[0].id
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "client_to_fsx" {
  for_each = var.fsx_lustre_enabled ? local.lustre_ports : {}

  security_group_id            = var.client_security_group_id
  description                  = "Lustre to the FSx scratch file system (${each.key})"
  ip_protocol                  = "tcp"
  from_port                    = each.value[0]
  to_port                      = each.value[1]
  referenced_security_group_id = aws_security_group.fsx[0].id
  tags                         = var.tags
}

# SCRATCH_2: no replication, encrypted at rest with an FSx-managed key (scratch file systems take no
# customer key), in transit between Nitro instances. Files appear lazily from the bucket prefix.
resource "aws_fsx_lustre_file_system" "this" {
  # checkov:skip=CKV_AWS_190:SCRATCH_2 file systems cannot use a customer managed key; they are encrypted with an FSx-managed key.
  count = local.fsx_count

  deployment_type    = "SCRATCH_2"
  storage_capacity   = var.fsx_storage_capacity_gib
  subnet_ids         = [var.subnet_ids[0]]
  security_group_ids = [aws_security_group.fsx[0].id]
  import_path        = "s3://${var.bucket_name}/${var.fsx_import_prefix}"
  auto_import_policy = "NEW_CHANGED_DELETED"
  tags               = merge(var.tags, { Name = "${var.name_prefix}-scratch" })

  lifecycle {
    precondition {
      condition     = var.bucket_name != null
      error_message = "fsx_lustre_enabled needs bucket_name (the bucket the scratch file system imports from)."
    }
  }
}

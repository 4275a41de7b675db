output "efs" {
  description = "The shared EFS file system for the compute module (`file_system_id`, `file_system_arn`, `access_point_id`, `access_point_arn`), or null when efs_enabled is false."
  value = var.efs_enabled ? {
    file_system_id   = aws_efs_file_system.this[0].id
    file_system_arn  = aws_efs_file_system.this[0].arn
    access_point_id  = aws_efs_access_point.this[0].id
    access_point_arn = aws_efs_access_point.this[0].arn
  } : null
}

output "efs_security_group_id" {
  description = "Security group of the EFS mount targets (null without EFS)."
  value       = try(aws_security_group.efs[0].id, null)
}

output "fsx_lustre" {
  description = "The FSx for Lustre scratch file system (`dns_name`, `mount_name`), or null when fsx_lustre_enabled is false."
  value = var.fsx_lustre_enabled ? {
    dns_name   = aws_fsx_lustre_file_system.this[0].dns_name
    mount_name = aws_fsx_lustre_file_system.this[0].mount_name
  } : null
}

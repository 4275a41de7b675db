output "vpc_id" {
  description = "VPC of the Batch instances (created or given)."
  value       = local.vpc_id
}

output "subnet_ids" {
  description = "Subnets of the Batch compute environments."
  value       = local.subnet_ids
}

output "security_group_id" {
  description = "Security group of the Batch instances."
  value       = aws_security_group.batch.id
}

output "mnp_security_group_id" {
  description = "Security group of the multi-node instances only (with security_group_id): mnp_ports between its members."
  value       = aws_security_group.mnp.id
}

output "nat_gateway_id" {
  description = "NAT gateway of the created VPC (null when an existing VPC is used)."
  value       = try(aws_nat_gateway.this[0].id, null)
}

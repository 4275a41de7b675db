locals {
  vpc_id     = var.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  subnet_ids = var.create_vpc ? [for s in aws_subnet.private : s.id] : var.subnet_ids
  azs        = { for i, az in var.availability_zones : az => i }
}

################################################################################
# Optional minimal VPC: private subnets, one NAT gateway, gateway endpoints
################################################################################

resource "aws_vpc" "this" {
  count = var.create_vpc ? 1 : 0

  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(var.tags, { Name = var.name_prefix })
}

# Nothing may use the default security group: it loses all its rules.
resource "aws_default_security_group" "this" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name_prefix}-default-unused" })
}

resource "aws_subnet" "private" {
  for_each = var.create_vpc ? local.azs : {}

  vpc_id            = aws_vpc.this[0].id
  availability_zone = each.key
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, each.value)
  tags              = merge(var.tags, { Name = "${var.name_prefix}-private-${each.key}" })
}

resource "aws_subnet" "public" {
  count = var.create_vpc ? 1 : 0

  vpc_id            = aws_vpc.this[0].id
  availability_zone = var.availability_zones[0]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 255)
  tags              = merge(var.tags, { Name = "${var.name_prefix}-public" })
}

resource "aws_internet_gateway" "this" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = var.name_prefix })
}

resource "aws_eip" "nat" {
  count = var.create_vpc ? 1 : 0

  domain = "vpc"
  tags   = merge(var.tags, { Name = "${var.name_prefix}-nat" })
}

# One NAT gateway: the jobs only pull images and talk to AWS APIs; S3/DynamoDB bypass it.
resource "aws_nat_gateway" "this" {
  count = var.create_vpc ? 1 : 0

  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id
  tags          = merge(var.tags, { Name = var.name_prefix })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "public" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name_prefix}-public" })
}

resource "aws_route" "public_internet" {
  count = var.create_vpc ? 1 : 0

  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count = var.create_vpc ? 1 : 0

  subnet_id      = aws_subnet.public[0].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_route_table" "private" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name_prefix}-private" })
}

resource "aws_route" "private_nat" {
  count = var.create_vpc ? 1 : 0

  route_table_id         = aws_route_table.private[0].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[0].id
}

resource "aws_route_table_association" "private" {
  for_each = aws_subnet.private

  subnet_id      = each.value.id
  route_table_id = aws_route_table.private[0].id
}

data "aws_region" "current" {}

# Checkpoint traffic to S3 and DynamoDB stays off the NAT gateway (no per-GB processing charge).
resource "aws_vpc_endpoint" "gateway" {
  for_each = var.create_vpc ? toset(["s3", "dynamodb"]) : toset([])

  vpc_id            = aws_vpc.this[0].id
  service_name      = "com.amazonaws.${data.aws_region.current.region}.${each.key}"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private[0].id]
  tags              = merge(var.tags, { Name = "${var.name_prefix}-${each.key}" })
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  count = var.create_vpc ? 1 : 0

  name              = "/aws/vpc/${var.name_prefix}-flow-logs"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "flow_logs" {
  count = var.create_vpc ? 1 : 0

  name_prefix        = "${var.name_prefix}-flow-logs-"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "flow_logs" {
  count = var.create_vpc ? 1 : 0

  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow_logs[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  count = var.create_vpc ? 1 : 0

  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs[0].id
  policy = data.aws_iam_policy_document.flow_logs[0].json
}

resource "aws_flow_log" "this" {
  count = var.create_vpc ? 1 : 0

  vpc_id          = aws_vpc.this[0].id
  traffic_type    = "REJECT"
  log_destination = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn    = aws_iam_role.flow_logs[0].arn
  tags            = var.tags
}

################################################################################
# Security group of the Batch instances
################################################################################

resource "aws_security_group" "batch" {
  # checkov:skip=CKV2_AWS_5:Attached by the Batch compute environments (compute module), which checkov cannot follow across modules.
  name_prefix = "${var.name_prefix}-batch-"
  description = "stepspot Batch instances: HTTPS out"
  vpc_id      = local.vpc_id
  tags        = merge(var.tags, { Name = "${var.name_prefix}-batch" })

  lifecycle {
    create_before_destroy = true
  }
}

# Images come from public registries and ECR; AWS APIs have no fixed address ranges.
#trivy:ignore:AWS-0104
resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.batch.id
  description       = "Container registries and AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = var.tags
}

################################################################################
# Security group of the multi-node (MPI) instances, on top of the Batch group
################################################################################

locals {
  # Only the ports the nodes of one job use towards each other (var.mnp_ports). EFA needs all traffic
  # within its group (EC2 User Guide, "Prepare an EFA-enabled security group").
  mnp_rules = var.mnp_efa_enabled ? { all = { ip_protocol = "-1", from_port = null, to_port = null, purpose = "EFA: all traffic between the nodes" } } : {
    for p in var.mnp_ports : "${p.from_port}-${p.to_port}" => merge(p, { ip_protocol = "tcp" })
  }
}

resource "aws_security_group" "mnp" {
  # checkov:skip=CKV2_AWS_5:Attached by the multi-node compute environment (compute module), which checkov cannot follow across modules.
  name_prefix = "${var.name_prefix}-mnp-"
  description = "stepspot multi-node instances: rendezvous, rank and sshd ports between the nodes of a job"
  vpc_id      = local.vpc_id
  tags        = merge(var.tags, { Name = "${var.name_prefix}-mnp" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "mnp" {
  for_each = local.mnp_rules

  security_group_id            = aws_security_group.mnp.id
  description                  = each.value.purpose
  ip_protocol                  = each.value.ip_protocol
  from_port                    = each.value.from_port
  to_port                      = each.value.to_port
  referenced_security_group_id = aws_security_group.mnp.id
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "mnp" {
  for_each = local.mnp_rules

  security_group_id            = aws_security_group.mnp.id
  description                  = each.value.purpose
  ip_protocol                  = each.value.ip_protocol
  from_port                    = each.value.from_port
  to_port                      = each.value.to_port
  referenced_security_group_id = aws_security_group.mnp.id
  tags                         = var.tags
}

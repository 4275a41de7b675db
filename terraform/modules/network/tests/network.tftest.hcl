mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { region = "eu-west-1" }
  }
}

variables {
  name_prefix = "stepspot-test"
  kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/test"
}

run "uses_an_existing_vpc_by_default" {
  command = plan

  variables {
    vpc_id     = "vpc-123"
    subnet_ids = ["subnet-a", "subnet-b"]
  }

  assert {
    condition     = length(aws_vpc.this) == 0 && length(aws_nat_gateway.this) == 0
    error_message = "No VPC is created unless asked for."
  }

  assert {
    condition     = output.subnet_ids == tolist(["subnet-a", "subnet-b"]) && aws_security_group.batch.vpc_id == "vpc-123"
    error_message = "The given VPC and subnets are used."
  }

  assert {
    condition     = aws_vpc_security_group_egress_rule.https.from_port == 443 && aws_vpc_security_group_egress_rule.https.to_port == 443
    error_message = "Only HTTPS leaves the group towards the internet."
  }
}

run "multi_node_group_opens_only_the_node_ports_between_its_members" {
  command = plan

  variables {
    vpc_id     = "vpc-123"
    subnet_ids = ["subnet-a"]
  }

  assert {
    condition     = toset(keys(aws_vpc_security_group_ingress_rule.mnp)) == toset(["22-22", "7470-7470", "7471-7471"]) && toset(keys(aws_vpc_security_group_egress_rule.mnp)) == toset(keys(aws_vpc_security_group_ingress_rule.mnp))
    error_message = "sshd, the rendezvous and the example's rank port, nothing else."
  }

  assert {
    condition     = alltrue([for r in values(aws_vpc_security_group_ingress_rule.mnp) : r.ip_protocol == "tcp" && r.from_port == r.to_port])
    error_message = "Single TCP ports, from members of the group only (referenced_security_group_id)."
  }
}

run "multi_node_group_allows_all_traffic_between_members_for_efa" {
  command = plan

  variables {
    vpc_id          = "vpc-123"
    subnet_ids      = ["subnet-a"]
    mnp_efa_enabled = true
  }

  assert {
    condition     = keys(aws_vpc_security_group_ingress_rule.mnp) == ["all"] && aws_vpc_security_group_ingress_rule.mnp["all"].ip_protocol == "-1" && keys(aws_vpc_security_group_egress_rule.mnp) == ["all"]
    error_message = "EFA needs all traffic between the members of its security group."
  }
}

run "creates_a_minimal_vpc_on_request" {
  command = plan

  variables {
    create_vpc         = true
    availability_zones = ["eu-west-1a", "eu-west-1b"]
  }

  assert {
    condition     = length(aws_subnet.private) == 2 && length(aws_nat_gateway.this) == 1
    error_message = "One private subnet per zone behind one NAT gateway."
  }

  assert {
    condition     = aws_subnet.private["eu-west-1b"].cidr_block == "10.42.16.0/20"
    error_message = "Private subnets are carved from vpc_cidr."
  }

  assert {
    condition     = length(aws_vpc_endpoint.gateway) == 2 && length(aws_flow_log.this) == 1
    error_message = "S3/DynamoDB gateway endpoints and flow logs come with the VPC."
  }
}

run "needs_a_vpc_or_create_vpc" {
  command = plan

  expect_failures = [var.vpc_id, var.subnet_ids]
}

run "needs_zones_when_creating" {
  command = plan

  variables {
    create_vpc = true
  }

  expect_failures = [var.availability_zones]
}

run "rejects_bad_cidr" {
  command = plan

  variables {
    create_vpc         = true
    availability_zones = ["eu-west-1a"]
    vpc_cidr           = "10.42.0.0"
  }

  expect_failures = [var.vpc_cidr]
}

environment = "prod"
region      = "eu-west-1"

# To run in an existing network instead: create_vpc = false, vpc_id = "...", subnet_ids = [...].
create_vpc         = true
availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]

spot_bid_percentage = 100
spot_max_vcpus      = 1024
ondemand_max_vcpus  = 256
mnp_max_vcpus       = 576

checkpoint_retention_days  = 90
enable_deletion_protection = true
log_retention_days         = 365
state_machine_log_level    = "ERROR"

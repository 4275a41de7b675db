environment = "staging"
region      = "eu-west-1"

create_vpc         = true
availability_zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]

spot_max_vcpus     = 256
ondemand_max_vcpus = 64

log_retention_days      = 30
state_machine_log_level = "ERROR"

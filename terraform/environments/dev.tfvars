environment = "dev"
region      = "eu-west-1"

# Fill in your VPC, or set create_vpc = true and availability_zones.
create_vpc         = true
availability_zones = ["eu-west-1a", "eu-west-1b"]

spot_max_vcpus     = 64
ondemand_max_vcpus = 16
mnp_max_vcpus      = 128 # the seed sample's MPI step: 8 nodes x 16 vCPUs

force_destroy           = true
log_retention_days      = 7
lambda_log_level        = "DEBUG"
state_machine_log_level = "ALL"

# Jobs share an encrypted EFS file system at /mnt/efs (workflows opt in: global_config.shared_filesystem).
shared_filesystem_enabled = true

# GPU Spot/On-Demand queues (scale from zero, cost nothing idle): the ml-training template asks a GPU.
gpu_enabled            = true
gpu_spot_max_vcpus     = 32
gpu_ondemand_max_vcpus = 16

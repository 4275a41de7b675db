"""The deployment environments (terraform/environments/<env>.tfvars). A module of its own so that the
CLI's argument parser can offer them without importing ``stepspot.deployment``."""

ENVIRONMENTS = ("dev", "staging", "prod")

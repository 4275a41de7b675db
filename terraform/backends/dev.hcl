# S3 backend of the dev environment. The bucket is account specific: scripts/deploy.py adds
# -backend-config=bucket=stepspot-tfstate-<account id> (or $TF_STATE_BUCKET); create it once as
# described in terraform/README.md ("Backend bootstrap").
key          = "stepspot/dev/terraform.tfstate"
region       = "eu-west-1"
encrypt      = true
use_lockfile = true

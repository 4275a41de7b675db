provider "aws" {
  region = var.region

  # Static values only: a tag change on a Batch compute environment replaces it.
  default_tags {
    tags = {
      project     = "stepspot"
      environment = var.environment
      managed_by  = "terraform"
    }
  }
}

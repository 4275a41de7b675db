"""The literal reader of Terraform variables (tfvars assignments, variable defaults)."""

from __future__ import annotations

import pytest

from stepspot.errors import ConfigurationError
from stepspot.terraform_vars import parse_tfvars, variable_defaults


def test_tfvars_literals_with_comments_trailing_commas_and_nesting():
    text = """
    # a comment
    spot_instance_types = [
      "c7i.large", // another
      "m7i.xlarge",
    ]
    /* block
       comment */ gpu_enabled = true
    mnp_max_nodes = 4
    tags = { team = "md", "cost-center" = 42, nested = [1.5, null] }
    name = "quote \\" and backslash \\\\"
    """
    assert parse_tfvars(text) == {
        "spot_instance_types": ["c7i.large", "m7i.xlarge"],
        "gpu_enabled": True,
        "mnp_max_nodes": 4,
        "tags": {"team": "md", "cost-center": 42, "nested": [1.5, None]},
        "name": 'quote " and backslash \\',
    }


def test_expressions_that_are_not_literals_are_left_out_not_fatal():
    text = 'a = var.x\nb = "${var.y}-z"\nc = 1 + 2\nd = <<EOT\nhello\nEOT\ne = "kept"\nf = length([1, 2])\ng = 7\n'
    assert parse_tfvars(text) == {"e": "kept", "g": 7}


def test_variable_defaults_skip_types_validations_and_other_blocks():
    text = """
    locals { x = 1 }
    variable "mnp_max_nodes" {
      type    = number
      default = 8
      validation {
        condition     = var.mnp_max_nodes >= 1 && var.mnp_max_nodes <= 256
        error_message = "1-256."
      }
    }
    variable "no_default" { type = string }
    variable "types" {
      type    = list(string)
      default = ["c7i.large"]
    }
    """
    assert variable_defaults(text) == {"mnp_max_nodes": 8, "types": ["c7i.large"]}


def test_a_broken_file_is_one_sentence_with_the_line():
    with pytest.raises(ConfigurationError, match=r"dev.tfvars: a block is not closed; add the missing '\}'"):
        parse_tfvars("x {\n a = 1\n", "dev.tfvars")
    with pytest.raises(ConfigurationError, match=r"line 2: cannot read '@oops = 2'; fix the HCL syntax"):
        parse_tfvars("a = 1\n@oops = 2\n", "dev.tfvars")

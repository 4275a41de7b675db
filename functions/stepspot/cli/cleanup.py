"""`stepspot cleanup-job-definitions --env ENV`: deregister the derived job definitions of a deployment.

The attempt manager registers one job definition per (base definition content, image) at run time
(``stepspot.aws.batch``); Terraform never knew them, so `terraform destroy` leaves them. `make destroy`
runs this command first. Only ACTIVE definitions tagged ``stepspot:derived-from`` with a base of this
environment (``stepspot-<env>-...``, Terraform's name prefix) are touched.
"""

from __future__ import annotations

import argparse

from stepspot.aws.batch import Batch
from stepspot.cli.output import console
from stepspot.cli.remote_context import EXIT_OK, RemoteContext


def base_name_prefix(environment: str) -> str:
    """Terraform's ``name_prefix`` of the environment's resources (terraform/main.tf), plus '-'."""
    return f"stepspot-{environment}-"


def run(args: argparse.Namespace) -> int:
    context = RemoteContext.from_args(args)
    removed = Batch(context.client("batch")).deregister_derived(base_name_prefix(args.env))
    for arn in removed:
        console.print(f"deregistered {arn}", highlight=False, soft_wrap=True)
    console.print(f"{len(removed)} derived job definition(s) of {args.env} deregistered", highlight=False)
    return EXIT_OK

"""`make plan|deploy|destroy ENV=...`: checks first, then terraform init/plan/apply with the env's files.

Refuses, before touching anything, when the environment is unknown or no AWS credentials are usable:
one sentence on stderr and exit code 3 (an environment problem, as everywhere in stepspot).
`check` only runs those checks (the Makefile calls it before building).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM_DIR = ROOT / "terraform"
TERRAFORM = [sys.executable, str(ROOT / "scripts" / "terraform")]
EXIT_ENVIRONMENT = 3  # README: environment problems (credentials, deployment) exit 3


def refuse(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    sys.exit(EXIT_ENVIRONMENT)


def known_environments() -> list[str]:
    return sorted(p.stem for p in (TERRAFORM_DIR / "environments").glob("*.tfvars"))


def check_environment(env: str) -> None:
    known = known_environments()
    if env not in known:
        refuse(
            f"Unknown environment '{env}': use ENV={' | ENV='.join(known)} "
            f"(or add terraform/environments/{env}.tfvars and terraform/backends/{env}.hcl)."
        )


def caller_account() -> str:
    """Account id of the current credentials; exits with advice when there are none."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return boto3.client("sts").get_caller_identity()["Account"]
    except (BotoCoreError, ClientError) as exc:
        reason = str(exc).rstrip(".")
        refuse(
            f"No usable AWS credentials ({reason}): configure them (aws configure, aws sso login, or "
            "AWS_PROFILE / AWS_ACCESS_KEY_ID) and run the command again."
        )


def terraform(*args: str) -> None:
    result = subprocess.run([*TERRAFORM, *args], cwd=TERRAFORM_DIR, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["check", "plan", "deploy", "destroy"])
    parser.add_argument("env")
    args = parser.parse_args(argv)

    check_environment(args.env)
    account = caller_account()
    if args.action == "check":
        print(f"environment {args.env}, AWS account {account}: ready")
        return 0

    bucket = os.environ.get("TF_STATE_BUCKET", f"stepspot-tfstate-{account}")
    terraform(
        "init",
        "-input=false",
        "-reconfigure",
        f"-backend-config=backends/{args.env}.hcl",
        f"-backend-config=bucket={bucket}",
    )
    var_file = f"-var-file=environments/{args.env}.tfvars"
    plan_file = f"{args.env}.tfplan"
    if args.action == "destroy":
        terraform("plan", "-destroy", "-input=false", var_file, f"-out={plan_file}")
        # The attempt manager's derived job definitions are not Terraform's: deregister them first (the
        # command reads the outputs, which the destroy removes).
        cleanup = [str(Path(sys.executable).with_name("stepspot")), "cleanup-job-definitions", "--env", args.env]
        if subprocess.run(cleanup, check=False).returncode != 0:
            sys.exit("Deregistering the derived job definitions failed (see above): fix that, then run again.")
    else:
        terraform("plan", "-input=false", var_file, f"-out={plan_file}")
    if args.action in ("deploy", "destroy"):
        terraform("apply", "-input=false", plan_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Run a stepspot workflow on a deployed environment, or locally. A thin wrapper over the `stepspot`
# CLI that works from a fresh clone: it creates the virtualenv (`make venv`) the first time.
set -euo pipefail

readonly EXIT_USAGE=2
readonly REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly PROG="$(basename "$0")"

usage() {
  cat <<USAGE
Usage: $PROG --workflow-file FILE [--execution-name NAME] [--env ENV] [--dry-run | --local] [--watch]
                       [-- EXTRA STEPSPOT ARGS...]

Validate and run a stepspot workflow (a JSON or YAML definition).

  --workflow-file FILE    the workflow definition (required)
  --execution-name NAME   workflow id and Step Functions execution name ([A-Za-z0-9_-], at most 64
                          characters; default: derived from the workflow name and the time)
  --env ENV               environment to submit to (or whose queues a dry run and a local run check):
                          dev, staging or prod (default: \$STEPSPOT_ENV or dev)
  --dry-run               validate and print the plan and cost estimate; nothing runs (stepspot plan)
  --local                 run on this machine, no AWS account needed (stepspot local)
  --watch                 after submitting, follow progress until the workflow ends (stepspot watch)
  -h, --help              show this help

Arguments after -- go to the stepspot subcommand unchanged.

Examples:
  $PROG --workflow-file examples/molecular-dynamics/workflow.json --dry-run
  $PROG --workflow-file examples/molecular-dynamics/workflow.json --local
  $PROG --workflow-file my-workflow.yaml --env staging --execution-name md-run-42 --watch

Exit codes: 0 success, 1 the workflow failed, 2 bad usage or invalid workflow,
            3 environment problem (credentials, deployment), 130 interrupted.
USAGE
}

die_usage() {
  echo "$PROG: $1" >&2
  echo "Try '$PROG --help'." >&2
  exit "$EXIT_USAGE"
}

need_value() {  # $1 = flag, $2 = number of remaining arguments including the flag
  if [[ "$2" -lt 2 ]]; then die_usage "$1 needs a value."; fi
}

workflow_file=""
execution_name=""
environment="${STEPSPOT_ENV:-dev}"
mode="submit"
watch=false
extra_args=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --workflow-file) need_value "$1" $#; workflow_file="$2"; shift 2 ;;
    --workflow-file=*) workflow_file="${1#*=}"; shift ;;
    --execution-name) need_value "$1" $#; execution_name="$2"; shift 2 ;;
    --execution-name=*) execution_name="${1#*=}"; shift ;;
    --env) need_value "$1" $#; environment="$2"; shift 2 ;;
    --env=*) environment="${1#*=}"; shift ;;
    --dry-run)
      [[ "$mode" == "local" ]] && die_usage "--dry-run and --local cannot be used together."
      mode="plan"; shift ;;
    --local)
      [[ "$mode" == "plan" ]] && die_usage "--dry-run and --local cannot be used together."
      mode="local"; shift ;;
    --watch) watch=true; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra_args=("$@"); break ;;
    *) die_usage "unknown option '$1'." ;;
  esac
done

[[ -n "$workflow_file" ]] || die_usage "--workflow-file is required."
[[ -f "$workflow_file" ]] || die_usage "workflow file '$workflow_file' does not exist."
case "$environment" in
  dev|staging|prod) ;;
  *) die_usage "unknown environment '$environment': choose dev, staging or prod." ;;
esac
if [[ -n "$execution_name" && ! "$execution_name" =~ ^[A-Za-z0-9_-]{1,64}$ ]]; then
  die_usage "execution name '$execution_name' must be 1-64 characters of letters, digits, '-' and '_'."
fi
if [[ "$watch" == true && "$mode" != "submit" ]]; then
  die_usage "--watch only applies when submitting to an environment (not with --dry-run or --local)."
fi

stepspot="$REPO_ROOT/.venv/bin/stepspot"
if [[ ! -x "$stepspot" ]]; then
  echo "$PROG: first run, creating the virtualenv (make venv)..." >&2
  make -C "$REPO_ROOT" --no-print-directory venv >&2
fi

case "$mode" in
  plan)  args=(plan "$workflow_file" --env "$environment") ;;   # every task must fit the environment's queues
  local) args=(local "$workflow_file" --env "$environment") ;;  # and local mode emulates that environment
  submit)
    args=(submit "$workflow_file" --env "$environment")
    [[ -n "$execution_name" ]] && args+=(--execution-name "$execution_name")
    [[ "$watch" == true ]] && args+=(--watch)
    ;;
esac
if [[ -n "$execution_name" && "$mode" != "submit" ]]; then
  echo "$PROG: note: --execution-name only names executions submitted to AWS; ignored here." >&2
fi

exec "$stepspot" "${args[@]}" ${extra_args[@]+"${extra_args[@]}"}

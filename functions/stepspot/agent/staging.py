"""Staging a task's declared inputs in and its declared outputs out, through S3 (boto3 only).

Inputs are downloaded into the working directory before the program starts, each file checked
against the sha256 in its producer's output manifest. Outputs are published after the program exits
0: files are uploaded content-addressed (``objects/<sha256>``, so racing attempts write identical
bytes and a retry reuses what an earlier attempt sent), then the manifest is written with one
conditional put (``If-None-Match: *``), which is the commit point. See ``stepspot.dataflow``.

Why S3 conditional writes and not a DynamoDB item: the manifest *is* the publication, so one request
both commits and stores it, readers (the consumer's agent, ``stepspot outputs``) need only S3 and the
job role needs nothing beyond ``runs/*`` in the bucket.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from stepspot.agent.settings import (
    EXIT_ACCESS_DENIED,
    EXIT_BAD_DIRECTORY,
    EXIT_STORE_UNAVAILABLE,
    AgentExit,
    AgentSettings,
)
from stepspot.agent_exit_codes import EXIT_INPUT_UNAVAILABLE, EXIT_OUTPUT_MISSING
from stepspot.checkpoint_files import DirectoryScanner, sha256_file
from stepspot.checkpoints import AGENT_PRIVATE_PREFIX
from stepspot.dataflow import (
    DataflowError,
    InputSpec,
    OutputFile,
    destination,
    is_directory,
    is_glob,
    manifest_document,
    matches,
    output_manifest_key,
    output_object_key,
    outputs_prefix,
    parse_manifest,
    parse_s3_uri,
    select,
)

FILE_WORKERS = 8  # files in flight at once; each large file is itself split in parallel parts
PART_BYTES = 16 * 1024 * 1024
PART_WORKERS = 4
_MISSING_CODES = ("NoSuchKey", "404", "NotFound")
_PRECONDITION_CODES = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
_DENIED_CODES = ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch")

log = logging.getLogger("stepspot.agent")
T = TypeVar("T")


def transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=PART_WORKERS, use_threads=True
    )


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class StageReport:
    files: int = 0
    bytes: int = 0
    transferred_files: int = 0
    reused_files: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class _Download:
    bucket: str
    key: str
    relative: str  # destination in the working directory
    sha256: str | None  # None for uri inputs (no manifest to check against)
    what: str  # for messages: "'x' from task 'p'"


class Stager:
    """Inputs in, outputs out, for one task attempt."""

    def __init__(self, settings: AgentSettings, s3: Any, transfer: Any | None = None) -> None:
        assert settings.work_dir is not None, "staging needs a working directory"
        self.settings = settings
        self.s3 = s3
        self.work_dir: Path = settings.work_dir
        self.scanner = DirectoryScanner(self.work_dir)
        self._transfer = transfer or transfer_config()

    # -- errors ----------------------------------------------------------------------------------

    def _input_failure(self, message: str) -> AgentExit:
        return AgentExit(EXIT_INPUT_UNAVAILABLE, f"Task {self.settings.task_id!r}: {message}")

    def _aws_failure(self, exc: Exception, action: str, fix: str) -> AgentExit:
        code = _code(exc)
        if code in _DENIED_CODES:
            return AgentExit(
                EXIT_ACCESS_DENIED, f"Task {self.settings.task_id!r}: {action} was denied ({code}): {fix}."
            )
        return AgentExit(
            EXIT_STORE_UNAVAILABLE,
            f"Task {self.settings.task_id!r}: {action} failed ({code or type(exc).__name__}): "
            "S3 could not be reached; the attempt is retried.",
        )

    def _parallel(self, work: Callable[[T], Any], items: Iterable[T]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=FILE_WORKERS, thread_name_prefix="stage") as pool:
            return list(pool.map(work, items))

    # -- inputs ----------------------------------------------------------------------------------

    def _manifest_files(self, spec: InputSpec) -> list[OutputFile]:
        from botocore.exceptions import BotoCoreError, ClientError

        s = self.settings
        assert spec.source is not None and spec.path is not None
        key = output_manifest_key(s.workflow_id, spec.source)
        try:
            body = self.s3.get_object(Bucket=s.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _code(exc) in _MISSING_CODES:
                raise self._input_failure(
                    f"input {spec.describe()} is missing: task {spec.source!r} has published no outputs "
                    f"(s3://{s.bucket}/{key} does not exist); it must succeed before this task starts."
                ) from None
            raise self._aws_failure(
                exc, f"reading s3://{s.bucket}/{key}", "grant the job role s3:GetObject on runs/*"
            ) from None
        except BotoCoreError as exc:
            raise self._aws_failure(exc, f"reading s3://{s.bucket}/{key}", "") from None
        try:
            _, files = parse_manifest(body)
        except DataflowError as exc:
            raise self._input_failure(f"input {spec.describe()} is corrupt: {exc} (s3://{s.bucket}/{key}).") from None
        chosen = select(files, spec.path)
        if not chosen:
            raise self._input_failure(
                f"input {spec.describe()} is missing: the published outputs of task {spec.source!r} hold no "
                f"file matching {spec.path!r}."
            )
        return chosen

    def _plan_inputs(self) -> list[_Download]:
        from botocore.exceptions import BotoCoreError, ClientError

        s = self.settings
        plan: list[_Download] = []
        for spec in s.inputs:
            if spec.source is not None:
                for f in self._manifest_files(spec):
                    plan.append(
                        _Download(
                            s.bucket,
                            output_object_key(s.workflow_id, spec.source, f.sha256),
                            destination(spec, f.path),
                            f.sha256,
                            f"{f.path!r} from task {spec.source!r}",
                        )
                    )
                continue
            bucket, key = parse_s3_uri(str(spec.uri))
            fix = "add the bucket's ARN to input_bucket_arns in the environment's tfvars and apply"
            if key and not key.endswith("/"):
                plan.append(_Download(bucket, key, spec.to, None, repr(spec.uri)))
                continue
            try:
                pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
                keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
            except (ClientError, BotoCoreError) as exc:
                raise self._aws_failure(exc, f"listing {spec.uri}", fix) from None
            keys = [k for k in keys if not k.endswith("/")]
            if not keys:
                raise self._input_failure(f"input {spec.uri!r} is missing: no object under that prefix.")
            for k in keys:
                plan.append(
                    _Download(bucket, k, f"{spec.to.rstrip('/')}/{k[len(key) :]}", None, f"{spec.uri}{k[len(key) :]}")
                )
        return plan

    def _download(self, item: _Download) -> tuple[int, bool]:
        from botocore.exceptions import BotoCoreError, ClientError

        target = self.work_dir / item.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.parent / f"{AGENT_PRIVATE_PREFIX}partial-{uuid.uuid4().hex}"
        try:
            self.s3.download_file(item.bucket, item.key, str(partial), Config=self._transfer)
        except ClientError as exc:
            partial.unlink(missing_ok=True)
            if _code(exc) in _MISSING_CODES:
                raise self._input_failure(
                    f"input file {item.what} is missing: s3://{item.bucket}/{item.key} does not exist."
                ) from None
            raise self._aws_failure(
                exc,
                f"downloading input {item.what}",
                "add the bucket's ARN to input_bucket_arns in the environment's tfvars and apply",
            ) from None
        except BotoCoreError as exc:
            partial.unlink(missing_ok=True)
            raise self._aws_failure(exc, f"downloading input {item.what}", "") from None
        sha, size = sha256_file(partial)
        if item.sha256 is not None and sha != item.sha256:
            partial.unlink(missing_ok=True)
            raise self._input_failure(
                f"input file {item.what} is corrupt: its sha256 is {sha}, the producer's manifest says {item.sha256}."
            )
        os.replace(partial, target)
        self.scanner.remember(item.relative, sha)  # an input republished as an output is not re-read
        return size, True

    def stage_inputs(self) -> StageReport:
        started = time.monotonic()
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AgentExit(
                EXIT_BAD_DIRECTORY,
                f"The working directory {str(self.work_dir)!r} cannot be created ({exc.strerror}): "
                "point STEPSPOT_WORK_DIR at a writable directory.",
            ) from None
        if not self.settings.inputs:
            return StageReport()
        plan = self._plan_inputs()
        sizes = self._parallel(self._download, plan)
        report = StageReport(
            files=len(plan),
            bytes=sum(size for size, _ in sizes),
            transferred_files=len(plan),
            seconds=time.monotonic() - started,
        )
        log.info("staged %d input files (%d bytes) in %.2f s", report.files, report.bytes, report.seconds)
        return report

    # -- outputs ---------------------------------------------------------------------------------

    def _missing_message(self, declared: str) -> str:
        here = self.work_dir / declared.rstrip("/")
        if is_glob(declared):
            what = f"the glob {declared!r} matches no file"
        elif is_directory(declared):
            what = f"the directory {declared!r} holds no file"
        elif here.is_dir():
            return (
                f"Task {self.settings.task_id!r}: declared output {declared!r} is a directory: declare it as "
                f"{declared + '/'!r} to publish its files."
            )
        else:
            what = f"there is no file {declared!r}"
        return (
            f"Task {self.settings.task_id!r}: declared output {declared!r} was not produced: the program exited 0 "
            f"but {what} in its working directory; write it there or fix tasks[].outputs."
        )

    def collect_outputs(self) -> list[OutputFile]:
        declared = self.settings.outputs
        try:
            scanned = self.scanner.scan(include=lambda rel: any(matches(d, rel) for d in declared))
        except OSError as exc:
            raise AgentExit(
                EXIT_BAD_DIRECTORY, f"The working directory {str(self.work_dir)!r} cannot be read ({exc})."
            ) from None
        for item in declared:
            if not any(matches(item, f.path) for f in scanned):
                raise AgentExit(EXIT_OUTPUT_MISSING, self._missing_message(item))
        return sorted((OutputFile(f.path, f.size, f.sha256) for f in scanned), key=lambda f: f.path)

    def _existing_objects(self, prefix: str) -> set[str]:
        found: set[str] = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket, Prefix=prefix):
            found.update(item["Key"][len(prefix) :] for item in page.get("Contents", []))
        return found

    def publish_outputs(self) -> StageReport:
        from botocore.exceptions import BotoCoreError, ClientError

        s = self.settings
        if not s.outputs:
            return StageReport()
        started = time.monotonic()
        files = self.collect_outputs()
        objects = outputs_prefix(s.workflow_id, s.task_id) + "objects/"
        fix = "grant the job role s3:PutObject on runs/* in the bucket"
        try:
            existing = self._existing_objects(objects)
        except (ClientError, BotoCoreError) as exc:
            raise self._aws_failure(exc, f"listing s3://{s.bucket}/{objects}", fix) from None
        pending: dict[str, OutputFile] = {}
        for f in files:
            if f.sha256 not in existing:
                pending.setdefault(f.sha256, f)

        def upload(f: OutputFile) -> None:
            key = output_object_key(s.workflow_id, s.task_id, f.sha256)
            try:
                self.s3.upload_file(str(self.work_dir / f.path), s.bucket, key, Config=self._transfer)
            except (ClientError, BotoCoreError) as exc:
                raise self._aws_failure(exc, f"uploading output {f.path!r}", fix) from None

        self._parallel(upload, pending.values())
        manifest_key = output_manifest_key(s.workflow_id, s.task_id)
        body = manifest_document(s.workflow_id, s.task_id, s.attempt, files, s.outputs)
        try:
            self.s3.put_object(
                Bucket=s.bucket, Key=manifest_key, Body=body, ContentType="application/json", IfNoneMatch="*"
            )
        except ClientError as exc:
            if _code(exc) not in _PRECONDITION_CODES:
                raise self._aws_failure(exc, f"publishing s3://{s.bucket}/{manifest_key}", fix) from None
            # Another attempt of this task (a duplicate after a lost response, or a retry that raced a
            # slow publisher) committed first. Its publication stands whole; ours is simply not used.
            log.warning(
                "outputs of task %s were already published (s3://%s/%s): keeping that publication, this "
                "attempt's outputs are not used",
                s.task_id,
                s.bucket,
                manifest_key,
            )
        except BotoCoreError as exc:
            raise self._aws_failure(exc, f"publishing s3://{s.bucket}/{manifest_key}", fix) from None
        report = StageReport(
            files=len(files),
            bytes=sum(f.size for f in files),
            transferred_files=len(pending),
            reused_files=len(files) - len(pending),
            seconds=time.monotonic() - started,
        )
        log.info(
            "published %d output files (%d bytes; %d uploaded, %d reused) in %.2f s",
            report.files,
            report.bytes,
            report.transferred_files,
            report.reused_files,
            report.seconds,
        )
        return report

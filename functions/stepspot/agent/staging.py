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
import posixpath
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
from stepspot.aws.output_objects import CorruptFile, MissingObject, OutputObjects, error_code
from stepspot.checkpointing.files import DirectoryScanner
from stepspot.checkpointing.model import AGENT_PRIVATE_PREFIX
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
    parse_manifest,
    parse_s3_uri,
    select,
)

FILE_WORKERS = 8  # files in flight at once; each large file is itself split in parallel parts
PART_BYTES = 16 * 1024 * 1024
PART_WORKERS = 4
_MISSING_CODES = ("NoSuchKey", "404", "NotFound")
_DENIED_CODES = ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch")

log = logging.getLogger("stepspot.agent")
T = TypeVar("T")


def _input_bucket_fix(bucket: str) -> str:
    """What to change when the job role may not read a `uri` input's bucket (as `stepspot submit` says it)."""
    return f'add "arn:aws:s3:::{bucket}" to input_bucket_arns in the environment\'s tfvars and apply'


def transfer_config() -> Any:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=PART_WORKERS, use_threads=True
    )


@dataclass(frozen=True)
class StageReport:
    files: int = 0
    bytes: int = 0
    transferred_files: int = 0
    reused_files: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class _UriDownload:
    bucket: str
    key: str
    relative: str  # destination in the working directory
    what: str  # for messages


class Stager:
    """Inputs in, outputs out, for one task attempt."""

    def __init__(self, settings: AgentSettings, s3: Any, transfer: Any | None = None) -> None:
        assert settings.work_dir is not None, "staging needs a working directory"
        self.settings = settings
        self.s3 = s3
        self.work_dir: Path = settings.work_dir
        self.scanner = DirectoryScanner(self.work_dir)
        self._transfer = transfer or transfer_config()
        self.objects = OutputObjects(s3, settings.bucket, self._transfer)
        self._manifests: dict[str, list[OutputFile]] = {}

    # -- errors ----------------------------------------------------------------------------------

    def _input_failure(self, message: str) -> AgentExit:
        return AgentExit(EXIT_INPUT_UNAVAILABLE, f"Task {self.settings.task_id!r}: {message}")

    def _aws_failure(self, exc: Exception, action: str, fix: str) -> AgentExit:
        code = error_code(exc)
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
        assert spec.source is not None and spec.path is not None
        if spec.source not in self._manifests:  # one read per producer, however many inputs it feeds
            self._manifests[spec.source] = self._read_manifest(spec)
        chosen = select(self._manifests[spec.source], spec.path)
        if not chosen:
            raise self._input_failure(
                f"input {spec.describe()} is missing: the published outputs of task {spec.source!r} hold no "
                f"file matching {spec.path!r}."
            )
        return chosen

    def _read_manifest(self, spec: InputSpec) -> list[OutputFile]:
        from botocore.exceptions import BotoCoreError, ClientError

        s = self.settings
        assert spec.source is not None
        key = output_manifest_key(s.workflow_id, spec.source)
        try:
            body = self.s3.get_object(Bucket=s.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if error_code(exc) in _MISSING_CODES:
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
            return parse_manifest(body)[1]
        except DataflowError as exc:
            raise self._input_failure(f"input {spec.describe()} is corrupt: {exc} (s3://{s.bucket}/{key}).") from None

    def _uri_downloads(self, spec: InputSpec) -> list[_UriDownload]:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = parse_s3_uri(str(spec.uri))
        if key and not key.endswith("/"):
            return [_UriDownload(bucket, key, spec.to, repr(spec.uri))]
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
            keys = [item["Key"] for page in pages for item in page.get("Contents", []) if not item["Key"].endswith("/")]
        except (ClientError, BotoCoreError) as exc:
            raise self._aws_failure(exc, f"listing {spec.uri}", _input_bucket_fix(bucket)) from None
        if not keys:
            raise self._input_failure(f"input {spec.uri!r} is missing: no object under that prefix.")
        return [
            _UriDownload(bucket, k, posixpath.join(spec.to, k[len(key) :]), f"{spec.uri}{k[len(key) :]}") for k in keys
        ]

    def _download_uri(self, item: _UriDownload) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        target = self.work_dir / item.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.parent / f"{AGENT_PRIVATE_PREFIX}partial-{uuid.uuid4().hex}"
        try:
            self.s3.download_file(item.bucket, item.key, str(partial), Config=self._transfer)
        except ClientError as exc:
            partial.unlink(missing_ok=True)
            if error_code(exc) in _MISSING_CODES:
                raise self._input_failure(
                    f"input {item.what} is missing: s3://{item.bucket}/{item.key} does not exist."
                ) from None
            raise self._aws_failure(exc, f"downloading input {item.what}", _input_bucket_fix(item.bucket)) from None
        except BotoCoreError as exc:
            partial.unlink(missing_ok=True)
            raise self._aws_failure(exc, f"downloading input {item.what}", "") from None
        os.replace(partial, target)
        return target.stat().st_size

    def _fetch_published(self, producer: str, items: list[tuple[OutputFile, Path]]) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        s = self.settings
        try:
            written = self.objects.fetch(s.workflow_id, producer, items)
        except MissingObject as exc:
            raise self._input_failure(
                f"input file {exc.file.path!r} from task {producer!r} is missing: s3://{s.bucket}/{exc.key} does "
                "not exist."
            ) from None
        except CorruptFile as exc:
            raise self._input_failure(
                f"input file {exc.file.path!r} from task {producer!r} is corrupt: its sha256 is {exc.actual}, the "
                f"producer's manifest says {exc.file.sha256}."
            ) from None
        except (ClientError, BotoCoreError) as exc:
            raise self._aws_failure(exc, f"downloading the outputs of task {producer!r}", "") from None
        for file, target in items:
            self.scanner.remember(target.relative_to(self.work_dir).as_posix(), file.sha256)
        return written

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
        by_producer: dict[str, list[tuple[OutputFile, Path]]] = {}
        uris: list[_UriDownload] = []
        for spec in self.settings.inputs:
            if spec.source is None:
                uris.extend(self._uri_downloads(spec))
                continue
            for f in self._manifest_files(spec):
                by_producer.setdefault(spec.source, []).append((f, self.work_dir / destination(spec, f.path)))
        written = sum(self._fetch_published(producer, items) for producer, items in by_producer.items())
        written += sum(self._parallel(self._download_uri, uris))
        count = sum(map(len, by_producer.values())) + len(uris)
        report = StageReport(files=count, bytes=written, transferred_files=count, seconds=time.monotonic() - started)
        log.info("staged %d input files (%d bytes) in %.2f s", report.files, report.bytes, report.seconds)
        return report

    # -- outputs ---------------------------------------------------------------------------------

    def _missing_message(self, declared: str) -> str:
        here = self.work_dir / declared.rstrip("/")
        if not is_glob(declared) and here.is_symlink():  # the scanner skips links: they may point anywhere
            return (
                f"Task {self.settings.task_id!r}: declared output {declared!r} is a symbolic link: outputs publish "
                "regular files only; write or copy the file itself there."
            )
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

    def publish_outputs(self) -> StageReport:
        from botocore.exceptions import BotoCoreError, ClientError

        s = self.settings
        if not s.outputs:
            return StageReport()
        started = time.monotonic()
        files = self.collect_outputs()
        fix = "grant the job role s3:PutObject on runs/* in the bucket"
        try:
            entries, uploaded, reused = self.objects.upload(s.workflow_id, s.task_id, self.work_dir, files)
            manifest = manifest_document(s.workflow_id, s.task_id, s.attempt, entries, s.outputs)
            committed = self.objects.commit(s.workflow_id, s.task_id, manifest)
        except (ClientError, BotoCoreError) as exc:
            raise self._aws_failure(exc, f"publishing the outputs of task {s.task_id!r}", fix) from None
        if not committed:
            # Another attempt of this task (a duplicate after a lost response, or a retry that raced a
            # slow publisher) committed first. Its publication stands whole; ours is simply not used.
            log.warning(
                "outputs of task %s were already published (s3://%s/%s): keeping that publication, this "
                "attempt's outputs are not used",
                s.task_id,
                s.bucket,
                output_manifest_key(s.workflow_id, s.task_id),
            )
        report = StageReport(
            files=len(files),
            bytes=sum(f.size for f in files),
            transferred_files=uploaded,
            reused_files=reused,
            seconds=time.monotonic() - started,
        )
        log.info(
            "published %d output files (%d bytes; %d objects uploaded, %d reused) in %.2f s",
            report.files,
            report.bytes,
            report.transferred_files,
            report.reused_files,
            report.seconds,
        )
        return report

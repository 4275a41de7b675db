"""Data between tasks: declared outputs and inputs, their S3 layout and the output manifest. Pure.

Standard library only: the workflow validator and the in-container agent both use it.

A task declares ``outputs`` (paths relative to its working directory: a file, a directory with a
trailing ``/`` taken recursively, or a glob such as ``frames/*.xyz``) and ``inputs`` (``{"from": task,
"path": ..., "to": ...}`` or ``{"uri": "s3://...", "to": ...}``).

Layout of a task's published outputs (one prefix per task, docs/data.md):

* ``runs/<workflow>/<task>/outputs/objects/<sha256>``: the files, content-addressed. Objects are
  immutable (the same key always holds the same bytes), so two attempts racing to upload can never mix
  their files, and a retry reuses what an interrupted attempt already sent. Small files (under
  ``PACK_FILE_BYTES``) are concatenated into *pack* objects (addressed by the pack's own sha256, each
  file located by offset in the manifest): one request per few thousand files instead of one per file.
* ``runs/<workflow>/<task>/outputs/manifest.json``: ``{"format", "workflow_id", "task_id", "attempt",
  "files": [{"path", "size", "sha256"}]}``, written once with a conditional put (``If-None-Match: *``).
  That write is the commit point: before it nothing is visible; after it nothing changes.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_SHARED_MOUNT_PATH = "/mnt/efs"  # terraform's shared_mount_path default, where the recipe's sample looks
RUNS_ROOT = "runs/"
OUTPUTS_DIR = "outputs/"
OBJECTS_DIR = "objects/"
OUTPUT_MANIFEST_NAME = "manifest.json"
OUTPUT_MANIFEST_FORMAT = 1
PACK_FILE_BYTES = 1024 * 1024  # files below this go into packs
PACK_MAX_BYTES = 16 * 1024 * 1024  # a pack is read whole by a consumer: keep it small enough for memory
PACK_MAX_FILES = 4096
_GLOB_CHARS = frozenset("*?[")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class DataflowError(ValueError):
    """A malformed input/output declaration or manifest (the message says what to fix)."""


@dataclass(frozen=True)
class InputSpec:
    """One declared input: from a task's published outputs (``source``) or from an S3 ``uri``."""

    to: str
    source: str | None = None  # producing task id
    path: str | None = None  # one of the producer's outputs, or a file/glob inside an output directory
    uri: str | None = None

    def describe(self) -> str:
        return f"{self.path!r} from task {self.source!r}" if self.source else repr(self.uri)

    def to_json(self) -> dict[str, str]:
        if self.source is not None:
            return {"from": self.source, "path": str(self.path), "to": self.to}
        return {"uri": str(self.uri), "to": self.to}


@dataclass(frozen=True)
class OutputFile:
    path: str
    size: int
    sha256: str
    pack: str | None = None  # sha256 of the pack object holding this small file (None: its own object)
    offset: int = 0  # where the file starts in the pack

    @property
    def object_sha256(self) -> str:
        """The content address of the object that holds the bytes."""
        return self.pack or self.sha256


# --------------------------------------------------------------------------- paths


def path_problem(path: str) -> str | None:
    """None when ``path`` is a safe relative POSIX path (glob characters allowed), else what is wrong."""
    if not path:
        return "is empty"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return "is absolute"
    if "\\" in path or "\x00" in path:
        return "contains a backslash or NUL character"
    parts = path.rstrip("/").split("/")
    if ".." in parts:
        return "contains '..'"
    if any(part in ("", ".") for part in parts):
        return "has an empty or '.' component"
    return None


def is_directory(declared: str) -> bool:
    return declared.endswith("/")


def is_glob(declared: str) -> bool:
    return any(c in _GLOB_CHARS for c in declared)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob whose ``*``, ``?`` and ``[...]`` never cross ``/`` (as a shell expands it)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def matches(declared: str, relative: str) -> bool:
    """True when the file ``relative`` is covered by the declaration (file, directory or glob)."""
    if is_directory(declared):
        return relative.startswith(declared)
    if is_glob(declared):
        return bool(_glob_regex(declared).match(relative))
    return relative == declared


def fixed_directory(declared: str) -> str:
    """The leading directory of a directory or glob declaration ('' for a glob in the top directory)."""
    if is_directory(declared):
        return declared
    parts = declared.split("/")
    head = []
    for part in parts[:-1]:
        if is_glob(part):
            break
        head.append(part)
    return "/".join(head) + "/" if head else ""


def covered_by(outputs: Iterable[str], path: str) -> bool:
    """True when an input ``path`` names one of ``outputs`` or a file/glob inside a declared directory."""
    for declared in outputs:
        if path == declared or (path.rstrip("/") == declared.rstrip("/") and is_directory(declared)):
            return True
        if is_directory(declared) and path.startswith(declared):
            return True
        if is_glob(declared) and not is_glob(path) and matches(declared, path):
            return True
    return False


def destination(spec: InputSpec, relative: str) -> str:
    """Where a file ``relative`` of the producer's outputs lands in the consumer's working directory."""
    assert spec.path is not None
    if relative == spec.path:
        return spec.to
    if spec.to == spec.path:  # default 'to': every file keeps its own path
        return relative
    tree = is_directory(spec.path) or is_glob(spec.path)
    base = fixed_directory(spec.path) if tree else spec.path + "/"  # a directory named without '/'
    return posixpath.join(spec.to, relative[len(base) :])


# --------------------------------------------------------------------------- declarations (agent side)


def parse_outputs(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise DataflowError("outputs must be a list of relative paths")
    for path in raw:
        problem = path_problem(path)
        if problem:
            raise DataflowError(f"output path {path!r} {problem}: use a path relative to the working directory")
    return tuple(raw)


def parse_inputs(raw: Any) -> tuple[InputSpec, ...]:
    if not isinstance(raw, list):
        raise DataflowError("inputs must be a list of objects")
    specs = []
    for item in raw:
        if not isinstance(item, dict):
            raise DataflowError("each input must be an object with from/path/to or uri/to")
        if "uri" in item:
            spec = InputSpec(to=str(item.get("to", "")), uri=str(item["uri"]))
            parse_s3_uri(str(spec.uri))
        else:
            path = str(item.get("path", ""))
            spec = InputSpec(to=str(item.get("to") or path), source=str(item.get("from", "")), path=path)
        for name, value in (("path", spec.path), ("to", spec.to)):
            problem = path_problem(value) if value is not None else None
            if problem:  # never write outside the working directory, whatever the environment says
                raise DataflowError(f"input {name} {value!r} {problem}: use a path relative to the working directory")
        specs.append(spec)
    return tuple(specs)


def inputs_json(specs: Sequence[InputSpec]) -> str:
    return json.dumps([s.to_json() for s in specs], separators=(",", ":"))


# --------------------------------------------------------------------------- S3 layout and manifest


def outputs_prefix(workflow_id: str, task_id: str) -> str:
    return f"{RUNS_ROOT}{workflow_id}/{task_id}/{OUTPUTS_DIR}"


def output_manifest_key(workflow_id: str, task_id: str) -> str:
    return outputs_prefix(workflow_id, task_id) + OUTPUT_MANIFEST_NAME


def output_object_key(workflow_id: str, task_id: str, sha256: str) -> str:
    return outputs_prefix(workflow_id, task_id) + OBJECTS_DIR + sha256


@dataclass(frozen=True)
class UnreadableInput:
    task_id: str
    uri: str
    bucket: str


def unreadable_uri_inputs(
    tasks: Iterable[tuple[str, Sequence[InputSpec]]], own_bucket: str, input_bucket_arns: Sequence[str]
) -> list[UnreadableInput]:
    """The ``uri`` inputs the deployment's job role cannot read: its own bucket only under runs/ (the
    published outputs), other buckets only when Terraform's input_bucket_arns lists them (IAM wildcards
    in the bucket name allowed). ``tasks``: (task id, its inputs)."""
    readable = [arn.rsplit(":", 1)[-1] for arn in input_bucket_arns]
    problems = []
    for task_id, specs in tasks:
        for spec in specs:
            if spec.uri is None:
                continue
            bucket, key = parse_s3_uri(spec.uri)
            if bucket == own_bucket and key.startswith(RUNS_ROOT):
                continue
            if not any(fnmatch.fnmatchcase(bucket, pattern) for pattern in readable):
                problems.append(UnreadableInput(task_id, spec.uri, bucket))
    return problems


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key or prefix) of ``s3://bucket/key``; DataflowError otherwise."""
    match = re.match(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(.*)$", uri)
    if not match:
        raise DataflowError(f"uri {uri!r} is not an S3 URI: write s3://bucket/key or s3://bucket/prefix/")
    return match.group(1), match.group(2)


def manifest_document(
    workflow_id: str, task_id: str, attempt: str, files: Sequence[OutputFile], declared: Sequence[str]
) -> bytes:
    body = {
        "format": OUTPUT_MANIFEST_FORMAT,
        "workflow_id": workflow_id,
        "task_id": task_id,
        "attempt": attempt,
        "declared": list(declared),
        "files": [_entry(f) for f in files],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _entry(f: OutputFile) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": f.path, "size": f.size, "sha256": f.sha256}
    if f.pack is not None:
        entry.update(pack=f.pack, offset=f.offset)
    return entry


def plan_packs(files: Sequence[OutputFile]) -> list[list[OutputFile]]:
    """Small files (one per content, in path order) grouped into packs; deterministic, so a retry of the
    same outputs builds the same packs and finds them already uploaded."""
    unique: dict[str, OutputFile] = {}
    for f in sorted(files, key=lambda f: f.path):
        if f.size < PACK_FILE_BYTES:
            unique.setdefault(f.sha256, f)
    packs: list[list[OutputFile]] = []
    current: list[OutputFile] = []
    size = 0
    for f in unique.values():
        if current and (size + f.size > PACK_MAX_BYTES or len(current) >= PACK_MAX_FILES):
            packs.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        packs.append(current)
    return packs


def parse_manifest(data: bytes) -> tuple[dict[str, Any], list[OutputFile]]:
    """(the document, its files); DataflowError when malformed or a path/hash is unsafe."""
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataflowError(f"the output manifest is not JSON ({exc})") from None
    if not isinstance(body, dict) or body.get("format") != OUTPUT_MANIFEST_FORMAT:
        raise DataflowError(f"the output manifest is not format {OUTPUT_MANIFEST_FORMAT}")
    files = []
    for entry in body.get("files", []):
        try:
            path, size, sha = str(entry["path"]), int(entry["size"]), str(entry["sha256"])
            pack = str(entry["pack"]) if entry.get("pack") is not None else None
            offset = int(entry.get("offset", 0))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataflowError(f"the output manifest has a malformed entry {entry!r}") from None
        unsafe_pack = pack is not None and not _SHA256.match(pack)
        if path_problem(path) or not _SHA256.match(sha) or size < 0 or offset < 0 or unsafe_pack:
            raise DataflowError(f"the output manifest has an unsafe entry {entry!r}")
        files.append(OutputFile(path, size, sha, pack, offset))
    return body, files


def select(files: Sequence[OutputFile], path: str) -> list[OutputFile]:
    """The files of a manifest an input ``path`` asks for (a file, a directory or a glob)."""
    if is_directory(path) or is_glob(path):
        return [f for f in files if matches(path, f.path)]
    exact = [f for f in files if f.path == path]
    return exact or [f for f in files if f.path.startswith(path + "/")]  # a directory named without '/'

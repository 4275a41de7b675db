"""Data staging by the agent against a moto server: publish, stage, corrupt/missing inputs, missing outputs,
duplicate publication, reuse by hash, and the real `stepspot-agent run` subprocess."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from checkpoint_support import AGENT, Store, staging_settings

from stepspot.agent import EXIT_INPUT_UNAVAILABLE, EXIT_OUTPUT_MISSING, AgentExit, AgentSettings, Stager
from stepspot.dataflow import output_manifest_key, output_object_key, parse_manifest

pytest_plugins = ("checkpoint_support",)  # fixtures: moto_endpoint, store


def settings(store: Store, work: Path, task_id: str, outputs=(), inputs=()) -> AgentSettings:
    return staging_settings(store.endpoint, store.bucket, work, task_id, outputs, inputs)


def write(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)


PRODUCED = {
    "system.json": b'{"atoms": 3}',
    "frames/0001.xyz": b"frame 1",
    "frames/deep/0002.xyz": b"frame 2",
    "logs/run.txt": b"log",
    "scratch.tmp": b"not declared",
}


def publish(store: Store, tmp_path: Path, task_id: str = "prep", files=PRODUCED, name: str = "prod") -> Stager:
    work = tmp_path / name
    write(work, files)
    stager = Stager(settings(store, work, task_id, outputs=["system.json", "frames/", "logs/*.txt"]), store.s3)
    stager.publish_outputs()
    return stager


def manifest(store: Store, task_id: str = "prep") -> dict:
    body = store.s3.get_object(Bucket=store.bucket, Key=output_manifest_key("wf-1", task_id))["Body"].read()
    return parse_manifest(body)[0]


def test_published_outputs_have_a_manifest_and_a_consumer_gets_exactly_the_declared_files(
    store: Store, tmp_path: Path
) -> None:
    publish(store, tmp_path)
    published = manifest(store)
    assert [(f["path"], f["size"]) for f in published["files"]] == [
        ("frames/0001.xyz", 7),
        ("frames/deep/0002.xyz", 7),
        ("logs/run.txt", 3),
        ("system.json", 12),
    ]
    assert published["files"][3]["sha256"] == hashlib.sha256(PRODUCED["system.json"]).hexdigest()

    work = tmp_path / "cons"
    inputs = [{"from": "prep", "path": "system.json", "to": "in/system.json"}, {"from": "prep", "path": "frames/"}]
    Stager(settings(store, work, "md", inputs=inputs), store.s3).stage_inputs()
    got = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    assert got == ["frames/0001.xyz", "frames/deep/0002.xyz", "in/system.json"]
    assert (work / "in/system.json").read_bytes() == PRODUCED["system.json"]


def test_a_corrupt_input_fails_the_attempt_naming_the_file(store: Store, tmp_path: Path) -> None:
    publish(store, tmp_path)
    entry = next(f for f in manifest(store)["files"] if f["path"] == "system.json")
    key = output_object_key("wf-1", "prep", entry["pack"])  # small files travel in a pack
    pack = bytearray(store.s3.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    pack[entry["offset"]] ^= 0xFF  # one flipped byte of system.json inside the pack
    store.s3.put_object(Bucket=store.bucket, Key=key, Body=bytes(pack))
    stager = Stager(settings(store, tmp_path / "c", "md", inputs=[{"from": "prep", "path": "system.json"}]), store.s3)
    with pytest.raises(AgentExit) as caught:
        stager.stage_inputs()
    received = bytes(pack[entry["offset"] : entry["offset"] + entry["size"]])
    assert (caught.value.code, caught.value.message) == (
        EXIT_INPUT_UNAVAILABLE,
        f"Task 'md': input file 'system.json' from task 'prep' is corrupt: its sha256 is "
        f"{hashlib.sha256(received).hexdigest()}, the producer's manifest says {entry['sha256']}.",
    )
    assert not (tmp_path / "c" / "system.json").exists()  # nothing half-staged under the final name


def test_a_large_corrupt_input_is_caught_after_a_multipart_download(store: Store, tmp_path: Path) -> None:
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB: its own object, not packed
    publish(store, tmp_path, files={**PRODUCED, "system.json": big})
    sha = hashlib.sha256(big).hexdigest()
    store.s3.put_object(Bucket=store.bucket, Key=output_object_key("wf-1", "prep", sha), Body=big[:-1] + b"x")
    stager = Stager(settings(store, tmp_path / "c", "md", inputs=[{"from": "prep", "path": "system.json"}]), store.s3)
    with pytest.raises(AgentExit) as caught:
        stager.stage_inputs()
    assert caught.value.code == EXIT_INPUT_UNAVAILABLE
    assert "input file 'system.json' from task 'prep' is corrupt: its sha256 is " in caught.value.message
    assert [p.name for p in (tmp_path / "c").iterdir()] == []  # the partial download was removed


def test_an_input_whose_producer_published_nothing_is_missing(store: Store, tmp_path: Path) -> None:
    stager = Stager(settings(store, tmp_path / "c", "md", inputs=[{"from": "prep", "path": "a.txt"}]), store.s3)
    with pytest.raises(AgentExit) as caught:
        stager.stage_inputs()
    assert (caught.value.code, caught.value.message) == (
        EXIT_INPUT_UNAVAILABLE,
        f"Task 'md': input 'a.txt' from task 'prep' is missing: task 'prep' has published no outputs "
        f"(s3://{store.bucket}/runs/wf-1/prep/outputs/manifest.json does not exist); it must succeed before this "
        "task starts.",
    )


@pytest.mark.parametrize(
    ("declared", "files", "message"),
    [
        (
            "result.json",
            {},
            "Task 'prep': declared output 'result.json' was not produced: the program exited 0 but there is no "
            "file 'result.json' in its working directory; write it there or fix tasks[].outputs.",
        ),
        (
            "frames/*.xyz",
            {"frames/a.pdb": b"x"},
            "Task 'prep': declared output 'frames/*.xyz' was not produced: the program exited 0 but the glob "
            "'frames/*.xyz' matches no file in its working directory; write it there or fix tasks[].outputs.",
        ),
        (
            "results",
            {"results/a": b"x"},
            "Task 'prep': declared output 'results' is a directory: declare it as 'results/' to publish its files.",
        ),
    ],
)
def test_a_missing_output_fails_as_an_application_error_naming_the_path(
    store: Store, tmp_path: Path, declared: str, files: dict[str, bytes], message: str
) -> None:
    write(tmp_path, files)
    stager = Stager(settings(store, tmp_path, "prep", outputs=[declared]), store.s3)
    with pytest.raises(AgentExit) as caught:
        stager.publish_outputs()
    assert (caught.value.code, caught.value.message) == (EXIT_OUTPUT_MISSING, message)
    listed = store.s3.list_objects_v2(Bucket=store.bucket, Prefix="runs/").get("Contents", [])
    assert listed == []  # nothing uploaded, nothing published


def test_a_duplicate_attempt_never_changes_or_mixes_the_first_publication(store: Store, tmp_path: Path) -> None:
    publish(store, tmp_path, name="first")
    first = manifest(store)
    duplicate = {**PRODUCED, "system.json": b'{"atoms": 4}', "frames/0001.xyz": b"other frame"}
    publish(store, tmp_path, files=duplicate, name="second")
    assert manifest(store) == first
    work = tmp_path / "cons"
    Stager(settings(store, work, "md", inputs=[{"from": "prep", "path": "frames/"}]), store.s3).stage_inputs()
    assert (work / "frames/0001.xyz").read_bytes() == b"frame 1"


def test_a_retry_reuses_what_an_interrupted_attempt_uploaded(store: Store, tmp_path: Path) -> None:
    publish(store, tmp_path, name="first")
    # The first attempt was reclaimed just before its commit: its objects are there, its manifest is not.
    store.s3.delete_object(Bucket=store.bucket, Key=output_manifest_key("wf-1", "prep"))
    work = tmp_path / "retry"
    write(work, PRODUCED)
    stager = Stager(settings(store, work, "prep", outputs=["system.json", "frames/", "logs/*.txt"]), store.s3)
    report = stager.publish_outputs()
    assert (report.files, report.transferred_files, report.reused_files) == (4, 0, 1)  # one pack of 4 files
    assert len(manifest(store)["files"]) == 4


def test_the_agent_runs_the_program_in_its_working_directory_and_publishes_after_exit_0(
    store: Store, tmp_path: Path
) -> None:
    env = store.env(tmp_path / "unused", task_id="prep")
    env.update(
        {
            "STEPSPOT_CHECKPOINT_ENABLED": "false",
            "STEPSPOT_WORK_DIR": str(tmp_path / "work"),
            "STEPSPOT_OUTPUTS": json.dumps(["out/"]),
        }
    )
    program = "import os; os.makedirs('out'); open('out/r.txt','w').write(os.getcwd())"
    done = subprocess.run([str(AGENT), "run", "--", sys.executable, "-c", program], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert [f["path"] for f in manifest(store)["files"]] == ["out/r.txt"]

    env.update({"STEPSPOT_TASK_ID": "use", "STEPSPOT_WORK_DIR": str(tmp_path / "w2"), "STEPSPOT_OUTPUTS": ""})
    env["STEPSPOT_INPUTS"] = json.dumps([{"from": "prep", "path": "out/r.txt", "to": "r.txt"}])
    check = "import sys; sys.exit(0 if open('r.txt').read().endswith('work') else 5)"
    done = subprocess.run([str(AGENT), "run", "--", sys.executable, "-c", check], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()

    env.update({"STEPSPOT_TASK_ID": "bad", "STEPSPOT_INPUTS": "", "STEPSPOT_OUTPUTS": json.dumps(["nothing.txt"])})
    done = subprocess.run([str(AGENT), "run", "--", sys.executable, "-c", "pass"], env=env, capture_output=True)
    assert done.returncode == EXIT_OUTPUT_MISSING
    assert done.stderr.decode().splitlines()[-1] == (
        "stepspot-agent: error: Task 'bad': declared output 'nothing.txt' was not produced: the program exited 0 "
        "but there is no file 'nothing.txt' in its working directory; write it there or fix tasks[].outputs."
    )


def test_racing_attempts_publish_exactly_one_consistent_set(store: Store, tmp_path: Path) -> None:
    import threading

    variants = [{k: v + bytes([n]) for k, v in PRODUCED.items()} for n in range(4)]
    barrier = threading.Barrier(len(variants))

    def attempt(n: int) -> None:
        work = tmp_path / f"attempt-{n}"
        write(work, variants[n])
        stager = Stager(settings(store, work, "prep", outputs=["system.json", "frames/", "logs/*.txt"]), store.s3)
        stager.collect_outputs()
        barrier.wait()
        stager.publish_outputs()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(len(variants))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    work = tmp_path / "cons"
    inputs = [{"from": "prep", "path": "system.json"}, {"from": "prep", "path": "frames/"}]
    Stager(settings(store, work, "md", inputs=inputs), store.s3).stage_inputs()
    got = {p: (work / p).read_bytes() for p in ("system.json", "frames/0001.xyz", "frames/deep/0002.xyz")}
    winners = [v for v in variants if all(v[p] == data for p, data in got.items())]
    assert len(winners) == 1  # every file from the same attempt: never a mix


# --------------------------------------------------------------------------- bad input at run time (exact text)


def test_an_input_glob_matching_no_published_file_is_missing(store: Store, tmp_path: Path) -> None:
    publish(store, tmp_path)  # frames/ holds .xyz files only
    inputs = [{"from": "prep", "path": "frames/*.pdb"}]
    with pytest.raises(AgentExit) as caught:
        Stager(settings(store, tmp_path / "c", "md", inputs=inputs), store.s3).stage_inputs()
    assert (caught.value.code, caught.value.message) == (
        EXIT_INPUT_UNAVAILABLE,
        "Task 'md': input 'frames/*.pdb' from task 'prep' is missing: the published outputs of task 'prep' hold "
        "no file matching 'frames/*.pdb'.",
    )


def test_a_uri_prefix_without_objects_is_missing(store: Store, tmp_path: Path) -> None:
    inputs = [{"uri": f"s3://{store.bucket}/reference/", "to": "ref/"}]
    with pytest.raises(AgentExit) as caught:
        Stager(settings(store, tmp_path / "c", "md", inputs=inputs), store.s3).stage_inputs()
    assert (caught.value.code, caught.value.message) == (
        EXIT_INPUT_UNAVAILABLE,
        f"Task 'md': input 's3://{store.bucket}/reference/' is missing: no object under that prefix.",
    )


class _DeniedBucket:
    """The job role's view of S3 when a bucket is outside input_bucket_arns: 403 on every request to it."""

    def __init__(self, s3: object, bucket: str) -> None:
        self._s3, self._bucket = s3, bucket

    def _deny(self, operation: str) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, operation)

    def download_file(self, bucket: str, *args: object, **kwargs: object) -> None:
        if bucket == self._bucket:
            self._deny("HeadObject")  # what s3transfer's download asks first
        self._s3.download_file(bucket, *args, **kwargs)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._s3, name)


def test_a_uri_in_a_bucket_the_job_role_cannot_read_exits_77_with_the_fix(store: Store, tmp_path: Path) -> None:
    from stepspot.agent import EXIT_ACCESS_DENIED

    inputs = [{"uri": "s3://lab-raw-2026/run1/reads.fq", "to": "reads.fq"}]
    stager = Stager(settings(store, tmp_path / "c", "md", inputs=inputs), _DeniedBucket(store.s3, "lab-raw-2026"))
    with pytest.raises(AgentExit) as caught:
        stager.stage_inputs()
    assert (caught.value.code, caught.value.message) == (
        EXIT_ACCESS_DENIED,
        "Task 'md': downloading input 's3://lab-raw-2026/run1/reads.fq' was denied (403): add "
        '"arn:aws:s3:::lab-raw-2026" to input_bucket_arns in the environment\'s tfvars and apply.',
    )
    assert list((tmp_path / "c").iterdir()) == []  # no partial file left


def test_a_declared_output_that_is_a_symbolic_link_is_named_as_one(store: Store, tmp_path: Path) -> None:
    # Outputs publish regular files only (a link may point outside the working directory); say so, not "no file"
    write(tmp_path, {"big/result.json": b"{}"})
    (tmp_path / "result.json").symlink_to(tmp_path / "big" / "result.json")
    with pytest.raises(AgentExit) as caught:
        Stager(settings(store, tmp_path, "prep", outputs=["result.json"]), store.s3).publish_outputs()
    assert (caught.value.code, caught.value.message) == (
        EXIT_OUTPUT_MISSING,
        "Task 'prep': declared output 'result.json' is a symbolic link: outputs publish regular files only; "
        "write or copy the file itself there.",
    )

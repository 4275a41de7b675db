"""CheckpointStore against moto S3 + DynamoDB: protocol, half-written uploads, corruption, races, retention."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from checkpoint_support import Store, agent_settings

from stepspot.checkpointing.aws.objects import CheckpointObjects
from stepspot.checkpointing.aws.table import CheckpointTable
from stepspot.checkpointing.files import DirectoryScanner
from stepspot.checkpointing.model import RetentionPolicy, manifest_key, task_prefix
from stepspot.checkpointing.store import CheckpointStore
from stepspot.errors import AwsResourceNotFoundError, CheckpointCorruptError, CheckpointStoreUnavailable

pytest_plugins = ("checkpoint_support",)  # fixtures: moto_endpoint, store

WF, TASK = "wf-1", "simulate"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_store(s: Store, clock: Clock | None = None) -> CheckpointStore:
    return CheckpointStore(CheckpointObjects(s.s3, s.bucket), CheckpointTable(s.ddb, s.table), clock=clock or Clock())


def write(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)


def save(cs: CheckpointStore, directory: Path) -> Any:
    return cs.save_directory(WF, TASK, directory)


def test_save_then_restore_round_trips_files_and_moves_the_pointer(store: Store, tmp_path: Path) -> None:
    # Given a directory with nested files
    source, target = tmp_path / "src", tmp_path / "dst"
    write(source, {"state.json": '{"step": 7}', "fields/rho.bin": "x" * 5000})
    cs = make_store(store)
    # When it is saved and restored elsewhere
    saved = save(cs, source)
    restored = cs.restore(WF, TASK, target)
    # Then sequence 1 is registered and the files come back byte for byte
    assert saved.record.sequence == 1 and saved.pointer_moved
    assert restored.found is not None and restored.found.record.sequence == 1
    assert (target / "state.json").read_text() == '{"step": 7}'
    assert (target / "fields/rho.bin").read_text() == "x" * 5000
    assert not (target / ".stepspot-staging").exists()


def test_unchanged_files_are_not_sent_again(store: Store, tmp_path: Path) -> None:
    # Given a checkpoint of a large file and a small one
    write(tmp_path, {"big.bin": "b" * 200_000, "state.json": "1"})
    cs = make_store(store)
    first = save(cs, tmp_path)
    # When only the small file changes
    write(tmp_path, {"state.json": "2"})
    second = save(cs, tmp_path)
    # Then only the small file is uploaded and the big one is reused from sequence 1
    assert first.uploaded_files == 2
    assert (second.uploaded_files, second.reused_files, second.uploaded_bytes) == (1, 1, 1)
    big = next(e for e in second.manifest.files if e.path == "big.bin")
    assert big.key.startswith(task_prefix(WF, TASK) + "000000000001/")
    # And an unchanged directory saves nothing at all
    assert save(cs, tmp_path).record is None


def test_half_written_checkpoint_is_never_registered(store: Store, tmp_path: Path) -> None:
    # Given a registered checkpoint 1
    write(tmp_path, {"a.txt": "one", "b.txt": "one"})
    cs = make_store(store)
    save(cs, tmp_path)
    write(tmp_path, {"a.txt": "two", "b.txt": "two"})

    # When the next upload dies after its first file (the instance vanished)
    class Dying(CheckpointObjects):
        calls = 0

        def upload_file(self, path: Path, key: str) -> tuple[str, int]:
            Dying.calls += 1
            if Dying.calls == 2:
                raise CheckpointStoreUnavailable("connection lost")
            return super().upload_file(path, key)

    broken = CheckpointStore(
        Dying(store.s3, store.bucket), CheckpointTable(store.ddb, store.table), clock=Clock(), workers=1
    )
    with pytest.raises(CheckpointStoreUnavailable):
        save(broken, tmp_path)
    # Then the pointer still names 1, the restore gives the old content, and 2 stays PENDING
    records, latest = cs.list(WF, TASK)
    assert latest == 1
    assert {(r.sequence, r.status) for r in records} == {(1, "COMPLETE"), (2, "PENDING")}
    restored = cs.restore(WF, TASK, tmp_path / "restore")
    assert restored.found.record.sequence == 1
    assert (tmp_path / "restore" / "a.txt").read_text() == "one"
    # And the next save takes sequence 3 and registers normally
    assert save(cs, tmp_path).record.sequence == 3


def test_corrupt_latest_checkpoint_is_skipped_for_the_previous_one(store: Store, tmp_path: Path) -> None:
    # Given two checkpoints, the newest one's file overwritten in S3 with same-size garbage
    cs = make_store(store)
    write(tmp_path, {"state.json": "step=1"})
    save(cs, tmp_path)
    write(tmp_path, {"state.json": "step=2"})
    second = save(cs, tmp_path)
    store.s3.put_object(Bucket=store.bucket, Key=second.manifest.files[0].key, Body=b"XXXXXX")
    # When restoring
    result = cs.restore(WF, TASK, tmp_path / "restore")
    # Then checkpoint 1 is restored and 2 is reported as skipped for its hash
    assert result.found.record.sequence == 1
    assert (tmp_path / "restore" / "state.json").read_text() == "step=1"
    assert [(s.sequence, s.reason) for s in result.skipped] == [
        (2, "checkpoint 2: state.json does not match its sha256")
    ]


def test_truncated_object_and_tampered_manifest_are_detected_without_downloading(store: Store, tmp_path: Path) -> None:
    # Given three checkpoints: 3 has a truncated file, 2 a rewritten manifest
    cs = make_store(store)
    results = []
    for step in (1, 2, 3):
        write(tmp_path, {"state.json": f"step={step}" * 10})
        results.append(save(cs, tmp_path))
    store.s3.put_object(Bucket=store.bucket, Key=results[2].manifest.files[0].key, Body=b"short")
    store.s3.put_object(Bucket=store.bucket, Key=manifest_key(WF, TASK, 2), Body=b'{"format": 1}')
    # When the state machine asks for the latest valid checkpoint
    found, skipped = cs.find_latest(WF, TASK)
    # Then it gets 1, with the reasons for skipping 3 and 2
    assert found is not None and found.record.sequence == 1
    assert [s.reason for s in skipped] == [
        "checkpoint 3: state.json has 5 bytes, manifest says 60",
        "checkpoint 2: manifest sha256 does not match",
    ]
    with pytest.raises(CheckpointCorruptError, match=r"checkpoint 3: state\.json has 5 bytes"):
        cs.get_checkpoint(WF, TASK, 3)


def test_racing_writers_lose_no_checkpoint_and_never_move_the_pointer_back(store: Store, tmp_path: Path) -> None:
    # Given four writers (threads) saving different content for the same task at once
    rounds, writers = 5, 4
    sequences: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(writers)

    def writer(index: int) -> None:
        directory = tmp_path / f"w{index}"
        cs = make_store(store)
        for round_ in range(rounds):
            write(directory, {"state.json": f"writer {index} round {round_}"})
            barrier.wait()
            result = cs.save(WF, TASK, DirectoryScanner(directory).scan(), directory)
            with lock:
                sequences.append(result.record.sequence)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every save got its own sequence, all are complete and the pointer names the highest
    records, latest = make_store(store).list(WF, TASK)
    assert sorted(sequences) == list(range(1, rounds * writers + 1))
    assert all(r.complete for r in records) and len(records) == rounds * writers
    assert latest == rounds * writers
    # And an older writer finishing late cannot pull the pointer back
    assert CheckpointTable(store.ddb, store.table).advance_latest(WF, TASK, 3) is False
    assert make_store(store).list(WF, TASK)[1] == rounds * writers


def test_retention_keeps_the_newest_and_really_deletes_the_rest(store: Store, tmp_path: Path) -> None:
    # Given five checkpoints a day apart sharing one unchanged big file
    clock = Clock()
    cs = make_store(store, clock)
    write(tmp_path, {"big.bin": "B" * 10_000})
    for step in range(5):
        write(tmp_path, {"state.json": str(step)})
        save(cs, tmp_path)
        clock.now += 86400
    # When cleanup keeps the newest two
    report = cs.cleanup(RetentionPolicy(keep_last=2, retention_days=30), workflow_id=WF)
    # Then 1-3 are gone from DynamoDB and their own objects from S3, but the shared file stays
    records, latest = cs.list(WF, TASK)
    assert [r.sequence for r in records] == [5, 4] and latest == 5
    assert report.deleted_checkpoints == 3 and report.deleted_sequences == {f"{WF}/{TASK}": [1, 2, 3]}
    keys = set(CheckpointObjects(store.s3, store.bucket).list_objects(task_prefix(WF, TASK)))
    assert keys == {
        "checkpoints/wf-1/simulate/000000000001/files/big.bin",
        "checkpoints/wf-1/simulate/000000000004/files/state.json",
        "checkpoints/wf-1/simulate/000000000004/manifest.json",
        "checkpoints/wf-1/simulate/000000000005/files/state.json",
        "checkpoints/wf-1/simulate/000000000005/manifest.json",
    }
    assert cs.restore(WF, TASK, tmp_path / "r").found.record.sequence == 5
    assert (tmp_path / "r" / "big.bin").read_text() == "B" * 10_000
    # When everything is older than the retention days (run twice: idempotent)
    clock.now += 40 * 86400
    cs.cleanup(RetentionPolicy(keep_last=2, retention_days=30))
    again = cs.cleanup(RetentionPolicy(keep_last=2, retention_days=30))
    # Then nothing is left: no objects, no items, no pointer
    assert CheckpointObjects(store.s3, store.bucket).list_objects("checkpoints/") == {}
    assert cs.list(WF, TASK) == ([], None)
    assert again.deleted_objects == 0


def test_abandoned_upload_is_swept_after_the_grace_period(store: Store, tmp_path: Path) -> None:
    # Given an upload that died after its reservation and one file
    clock = Clock()
    cs = make_store(store, clock)
    write(tmp_path, {"state.json": "1"})
    save(cs, tmp_path)
    table = CheckpointTable(store.ddb, store.table)
    record = cs._reserve(WF, TASK, "")
    store.s3.put_object(Bucket=store.bucket, Key=f"{task_prefix(WF, TASK)}000000000002/files/x", Body=b"x")
    policy = RetentionPolicy(keep_last=5, retention_days=30, pending_grace_seconds=3600)
    # When cleanup runs inside the grace period, then after it
    cs.cleanup(policy)
    assert table.get(WF, TASK, record.sequence) is not None
    clock.now += 7200
    report = cs.cleanup(policy)
    # Then the reservation and its object are gone, checkpoint 1 untouched
    assert report.abandoned_uploads == 1 and report.deleted_objects == 1
    assert table.get(WF, TASK, record.sequence) is None
    assert cs.restore(WF, TASK, tmp_path / "r").found.record.sequence == 1


def test_missing_bucket_is_named_with_the_fix(store: Store) -> None:
    objects = CheckpointObjects(store.s3, "no-such-bucket-here")
    with pytest.raises(AwsResourceNotFoundError) as caught:
        objects.check_bucket(task_prefix(WF, TASK))
    assert caught.value.message == (
        "Checkpoint bucket 'no-such-bucket-here' does not exist: "
        "create the bucket or set STEPSPOT_BUCKET to an existing bucket."
    )


def test_the_agent_starts_with_only_the_job_roles_prefixed_listing(store: Store, monkeypatch, tmp_path) -> None:
    """The job role grants s3:ListBucket only with s3:prefix "checkpoints/*" (terraform/modules/compute/
    iam.tf). S3 authorises HeadBucket as s3:ListBucket with no prefix: the agent must not need it."""
    import boto3

    from stepspot.agent.checkpoints import aws_clients, build_store
    from stepspot.local.aws_faults import error_response

    denied: list[str] = []

    def job_role(params: dict[str, Any], model: Any, **_: Any) -> Any:
        prefix = str(params.get("url_path", "")) + "&" + str(params.get("query_string", ""))
        unprefixed = model.name in ("HeadBucket", "ListObjects", "ListObjectsV2") and "checkpoints/" not in prefix
        if unprefixed:
            denied.append(model.name)
            return error_response("AccessDenied", "Access Denied", status=403)
        return None

    original = boto3.session.Session.client

    def client(self: Any, *args: Any, **kwargs: Any) -> Any:
        created = original(self, *args, **kwargs)
        created.meta.events.register("before-call.s3", job_role)
        return created

    monkeypatch.setattr(boto3.session.Session, "client", client)
    # As Batch sets them: the IAM evaluation (tests/iam) maps these names to the deployment's.
    monkeypatch.setenv("STEPSPOT_BUCKET", store.bucket)
    monkeypatch.setenv("STEPSPOT_CHECKPOINT_TABLE", store.table)
    settings = agent_settings(store.endpoint, store.bucket, tmp_path, workflow_id=WF, task_id=TASK, table=store.table)
    assert build_store(settings, *aws_clients(settings)) is not None
    assert denied == []

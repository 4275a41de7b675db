"""Pure checkpoint logic: keys, manifest, upload planning, retention, interval."""

from __future__ import annotations

import math

import pytest

from stepspot.checkpointing.model import (
    CheckpointRecord,
    FileEntry,
    Manifest,
    ManifestError,
    RetentionPlan,
    RetentionPolicy,
    ScannedFile,
    is_safe_relative_path,
    manifest_key,
    objects_to_delete,
    parse_interval,
    plan_retention,
    plan_upload,
    same_content,
    sequence_from_sk,
    sequence_of_key,
    sequence_sk,
    validate_id,
    young_daly_interval,
)

DAY = 86400.0


def test_keys_follow_the_contract() -> None:
    assert sequence_sk(7) == "SEQ#000000000007"
    assert sequence_from_sk("SEQ#000000000007") == 7
    assert manifest_key("wf", "t", 12) == "checkpoints/wf/t/000000000012/manifest.json"
    assert sequence_of_key("wf", "t", "checkpoints/wf/t/000000000012/files/a/b") == 12
    assert sequence_of_key("wf", "t", "checkpoints/wf/t2/000000000012/files/a") is None
    assert sorted([sequence_sk(10), sequence_sk(9)]) == [sequence_sk(9), sequence_sk(10)]  # sorts as numbers


def test_sequence_out_of_range_and_bad_ids_are_refused() -> None:
    with pytest.raises(ValueError, match=r"outside 1\.\.999999999999"):
        sequence_sk(0)
    with pytest.raises(ValueError, match=r"^task id 'a/b' is not valid: use 1-80 characters"):
        validate_id("task id", "a/b")


@pytest.mark.parametrize(
    ("path", "safe"),
    [
        ("a/b.txt", True),
        ("../x", False),
        ("/etc/passwd", False),
        ("a//b", False),
        ("a/./b", False),
        ("", False),
        ("a\\b", False),
    ],
)
def test_only_relative_paths_inside_the_directory_are_safe(path: str, safe: bool) -> None:
    assert is_safe_relative_path(path) is safe


def manifest(files: list[FileEntry], sequence: int = 1) -> Manifest:
    return Manifest("wf", "t", sequence, "2026-11-22T00:00:00Z", tuple(files))


def test_manifest_round_trips_and_rejects_tampering() -> None:
    original = manifest([FileEntry("a.txt", 3, "ab" * 32, "checkpoints/wf/t/000000000001/files/a.txt")])
    assert Manifest.from_json(original.to_json()) == original
    with pytest.raises(ManifestError, match="manifest is not JSON"):
        Manifest.from_json(b"{not json")
    with pytest.raises(ManifestError, match="manifest format is not 1"):
        Manifest.from_json(b'{"format": 2}')
    evil = original.to_json().replace(b'"a.txt"', b'"../../a.txt"', 1)
    with pytest.raises(ManifestError, match=r"manifest lists unsafe paths: \['../../a.txt'\]"):
        Manifest.from_json(evil)


def test_upload_plan_reuses_by_content_not_by_path() -> None:
    previous = manifest([FileEntry("big.bin", 100, "b" * 64, "k/big"), FileEntry("state", 1, "s" * 64, "k/state")])
    scanned = [ScannedFile("big-renamed.bin", 100, "b" * 64), ScannedFile("state", 2, "t" * 64)]
    plan = plan_upload(scanned, previous)
    assert [f.path for f in plan.to_upload] == ["state"] and plan.upload_bytes == 2
    assert plan.reused == (FileEntry("big-renamed.bin", 100, "b" * 64, "k/big"),)
    assert plan_upload(scanned, None).upload_bytes == 102
    assert same_content([ScannedFile("state", 1, "s" * 64), ScannedFile("big.bin", 100, "b" * 64)], previous)
    assert not same_content(scanned, previous)


def record(sequence: int, age_days: float, status: str = "COMPLETE", now: float = 100 * DAY) -> CheckpointRecord:
    return CheckpointRecord("wf", "t", sequence, status, now - age_days * DAY, "")


def test_retention_keeps_the_newest_n_and_drops_the_old() -> None:
    now = 100 * DAY
    records = [
        record(1, 10),
        record(2, 3),
        record(3, 2),
        record(4, 1),
        record(5, 0.1, "PENDING"),
        record(6, 2, "PENDING"),
    ]
    plan = plan_retention(records, RetentionPolicy(keep_last=2, retention_days=7, pending_grace_seconds=DAY), now)
    assert plan == RetentionPlan(delete=(1, 2), keep=(3, 4, 5), abandoned=(6,))
    # the newest checkpoint goes too once it is past the days (the task has been idle that long)
    assert plan_retention([record(1, 8)], RetentionPolicy(1, 7), now).delete == (1,)


def test_retention_policy_refuses_settings_that_would_lose_the_resume_point() -> None:
    with pytest.raises(ValueError, match="keep_last must be at least 1"):
        RetentionPolicy(keep_last=0, retention_days=7)
    with pytest.raises(ValueError, match="retention_days must be greater than 0"):
        RetentionPolicy(keep_last=1, retention_days=0)


def test_objects_to_delete_spares_referenced_kept_and_young_unregistered_objects() -> None:
    prefix = "checkpoints/wf/t/"
    objects = {
        f"{prefix}000000000001/files/big": 0.0,  # deleted sequence but referenced by a kept manifest
        f"{prefix}000000000001/manifest.json": 0.0,  # deleted sequence
        f"{prefix}000000000002/manifest.json": 0.0,  # kept
        f"{prefix}000000000003/files/x": 990.0,  # unregistered, young: may be an upload in flight
        f"{prefix}000000000004/files/y": 10.0,  # unregistered, old: leftover of a crash
    }
    plan = RetentionPlan(delete=(1,), keep=(2,))
    doomed = objects_to_delete("wf", "t", objects, plan, {f"{prefix}000000000001/files/big"}, 1000.0, 100.0)
    assert doomed == [f"{prefix}000000000001/manifest.json", f"{prefix}000000000004/files/y"]


def test_young_daly_interval() -> None:
    # C = 10 s, M = 6 h -> sqrt(2 * 10 * 21600) = 657 s
    assert young_daly_interval(10, 21600) == pytest.approx(math.sqrt(432000))
    assert young_daly_interval(0.0001, 3600) == 5.0  # floor: no busy loop for near-free checkpoints
    assert young_daly_interval(3600, 10**9) == 6 * 3600.0  # ceiling
    with pytest.raises(ValueError):
        young_daly_interval(1, 0)


def test_parse_interval() -> None:
    assert parse_interval(" AUTO ") is None
    assert parse_interval("600") == 600.0
    with pytest.raises(ValueError, match="'-1' must be a positive number of seconds or 'auto'"):
        parse_interval("-1")
    with pytest.raises(ValueError, match="'soon' is neither a number of seconds nor 'auto'"):
        parse_interval("soon")

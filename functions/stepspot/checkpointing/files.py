"""The local checkpoint directory: scanning with sha256 (cached by stat), and atomic placement on restore.

Standard library only. Only regular files are checkpointed; symbolic links, sockets and the agent's own
``.stepspot-*`` entries are skipped, so a restore can never write outside the directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stepspot.checkpointing.model import AGENT_PRIVATE_PREFIX, ScannedFile

CHUNK_BYTES = 1024 * 1024
STAGING_NAME = f"{AGENT_PRIVATE_PREFIX}staging"


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@dataclass(frozen=True)
class _StatKey:
    size: int
    mtime_ns: int
    inode: int


class DirectoryScanner:
    """Lists the regular files under ``root`` with their sha256.

    A file whose (size, mtime, inode) did not change since the last scan is not read again: after the
    first checkpoint, scanning a 1 GB directory with one changed file reads only that file.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, tuple[_StatKey, str]] = {}

    def _walk(self) -> list[tuple[str, Path, os.stat_result]]:
        found: list[tuple[str, Path, os.stat_result]] = []

        def on_error(exc: OSError) -> None:
            raise exc

        for directory, subdirs, files in os.walk(self.root, onerror=on_error, followlinks=False):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(AGENT_PRIVATE_PREFIX))
            for name in sorted(files):
                if name.startswith(AGENT_PRIVATE_PREFIX):
                    continue
                path = Path(directory, name)
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode):
                    continue
                relative = path.relative_to(self.root).as_posix()
                found.append((relative, path, info))
        return found

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Cheap stat-only view of the directory, to tell whether a program is still writing."""
        return tuple((rel, info.st_size, info.st_mtime_ns) for rel, _, info in self._walk())

    def scan(self, include: Callable[[str], bool] | None = None) -> list[ScannedFile]:
        """Every regular file (or those ``include`` accepts: the others are not read) with its sha256."""
        result: list[ScannedFile] = []
        seen: set[str] = set()
        for relative, path, info in self._walk():
            if include is not None and not include(relative):
                continue
            key = _StatKey(info.st_size, info.st_mtime_ns, info.st_ino)
            cached = self._cache.get(relative)
            if cached is not None and cached[0] == key:
                sha = cached[1]
            else:
                try:
                    sha, _ = sha256_file(path)
                except FileNotFoundError:  # replaced or removed between listing and reading
                    continue
                self._cache[relative] = (key, sha)
            seen.add(relative)
            result.append(ScannedFile(relative, info.st_size, sha, stat.S_IMODE(info.st_mode)))
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        return result

    def remember(self, relative: str, sha256: str) -> None:
        """Record a hash known to be right (a file just restored), so the next scan does not re-read it."""
        info = (self.root / relative).lstat()
        self._cache[relative] = (_StatKey(info.st_size, info.st_mtime_ns, info.st_ino), sha256)


def check_directory(root: Path) -> str | None:
    """None when ``root`` is a readable, writable directory (created if missing); else the problem."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"checkpoint directory {str(root)!r} cannot be created ({exc.strerror})"
    if not root.is_dir():
        return f"checkpoint directory {str(root)!r} is not a directory"
    if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
        return f"checkpoint directory {str(root)!r} is not readable and writable by this user"
    try:
        DirectoryScanner(root).fingerprint()
    except OSError as exc:
        return f"checkpoint directory {str(root)!r} cannot be read ({exc.strerror}: {exc.filename})"
    return None


class RestoreStaging:
    """A private directory inside the checkpoint directory where a restore downloads before moving.

    Files land in their final place only after every file of the checkpoint has been verified, so a
    corrupt or half-downloaded checkpoint never replaces what the directory holds.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / STAGING_NAME

    def __enter__(self) -> RestoreStaging:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def file(self, relative: str) -> Path:
        return self.path / relative

    def commit(self, relative: str, mode: int) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = self.file(relative)
        os.chmod(staged, mode & 0o7777 or 0o644)
        os.replace(staged, target)

"""Who may touch a run: ownership recorded in the run directory, the permission check, and the guest disk cap.

A run started by a guest visitor holds `owner.json` with a hash of the visitor's token (never the token
itself, so reading a run directory does not let anyone act as its visitor) and the run's time budget.
An `Actor` is who asks: the owner of the server (everything, except writing into shipped runs, which
nobody may) or a visitor (only runs that carry the same visitor id).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from core.store import atomic, runs

OWNER_FILE = "owner.json"
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


class NotYourRunError(PermissionError):
    """A visitor asked to stop, resume or delete a run that another visitor started."""


def visitor_id(token: str) -> str:
    """The id recorded for a visitor's token (a hash); ValueError for a token that is not a random token."""
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        raise ValueError("a visitor token is 16-128 letters, digits, '-' or '_'")
    return hashlib.sha256(token.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Actor:
    """Who asks: the server's owner (`is_owner`), or the visitor with id `visitor` (see visitor_id)."""

    visitor: str | None = None
    is_owner: bool = False

    @classmethod
    def owner(cls) -> Actor:
        return cls(is_owner=True)

    @classmethod
    def from_token(cls, token: str) -> Actor:
        return cls(visitor=visitor_id(token))


def record_owner(path: Path, actor: Actor, max_seconds: float | None = None) -> None:
    """Write owner.json: who started the run and how long it may train per start (None: no limit)."""
    atomic.write_json(Path(path) / OWNER_FILE, {"visitor": actor.visitor, "max_seconds": max_seconds,
                                                 "created": time.time()})


def ownership(path: Path) -> dict:
    """The run's owner.json, {} when it has none (a run of the owner or of single-user mode)."""
    return runs.read_json(Path(path) / OWNER_FILE) or {}


def time_limit(path: Path) -> float | None:
    """Seconds the run may train per start (its guest budget), None when unbounded."""
    value = ownership(path).get("max_seconds")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def refusal(actor: Actor, path: Path) -> str | None:
    """Why `actor` may not stop, resume or delete the run at `path`, or None when it may."""
    if runs.is_shipped(path):
        return "shipped pretrained runs are read-only"
    if actor.is_owner:
        return None
    visitor = ownership(path).get("visitor")
    if actor.visitor is None or visitor != actor.visitor:
        return "it was started by someone else; a visitor may change only the runs they started"
    return None


def check(actor: Actor, path: Path) -> None:
    """Raise NotYourRunError (or ReadOnlyRunError for a shipped run) when `actor` may not change `path`."""
    runs.ensure_writable(path)
    reason = refusal(actor, path)
    if reason:
        raise NotYourRunError(f"run {Path(path).name}: {reason}")


def visitor_runs(actor: Actor, root: Path) -> list[runs.RunInfo]:
    """The runs under `root` that `actor`'s visitor started."""
    return [info for info in runs.scan(root) if actor.visitor and ownership(info.path).get("visitor") == actor.visitor]


def directory_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (links are not followed)."""
    total = 0
    for item in Path(path).rglob("*"):
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_size
        except OSError:
            continue
    return total


def guest_runs(root: Path) -> list[runs.RunInfo]:
    """Runs under `root` started by any visitor, oldest first."""
    found = [info for info in runs.scan(root) if ownership(info.path).get("visitor")]
    return sorted(found, key=lambda info: (info.created, info.name))


def guest_bytes(root: Path) -> int:
    """Disk used by all guest runs under `root`."""
    return sum(directory_bytes(info.path) for info in guest_runs(root))


def enforce_disk_cap(root: Path, cap_bytes: int, room: int = 0) -> list[str]:
    """Delete the oldest finished guest runs under `root` until guest runs use at most `cap_bytes - room`;
    returns the names removed. Active runs, runs without an owner.json and shipped runs are never removed."""
    removed = []
    candidates = guest_runs(root)
    sizes = {info.path: directory_bytes(info.path) for info in candidates}
    used = sum(sizes.values())
    for info in candidates:
        if used <= cap_bytes - room:
            break
        if info.state in runs.ACTIVE_STATES or runs.is_shipped(info.path):
            continue
        shutil.rmtree(info.path, ignore_errors=True)
        used -= sizes[info.path]
        removed.append(info.name)
    return removed

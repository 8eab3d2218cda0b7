"""The engines' files: private dirs and secrets, copies of binaries for the engine account, names, and the locks a registry needs."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from awslab.home.state import write_private
from awslab.local.engines.accounts import RunAs
from awslab.local.engines.base import EngineError

try:
    import fcntl
    import pwd
except ImportError:  # Windows: the engines are POSIX-only, but importing this module must still work
    fcntl = pwd = None  # type: ignore[assignment]


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")




def make_dir(path: Path, mode: int, who: RunAs | None = None) -> None:
    """Create (or reset the mode of) a dir we own, or one owned by `who` when given."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    if path.is_symlink() or path.stat().st_uid not in (os.geteuid(), who.uid if who else os.geteuid()):
        raise EngineError(f"{path} exists and is not ours; remove it")
    os.chmod(path, mode)
    if who is not None and who.switch:
        os.chown(path, who.uid, who.gid)


def write_private_for(path: Path, text: str, who: RunAs | None = None) -> None:
    """A 0600 file owned by us, or by `who` (the engine's account)."""
    write_private(path, text, (who.uid, who.gid) if who is not None and who.switch else None)


def chown_tree(path: Path, who: RunAs) -> None:
    if not who.switch:
        return
    os.chown(path, who.uid, who.gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), who.uid, who.gid, follow_symlinks=False)


def copy_runnable(tool: Path, pkg: Path | None, top: Path, dest: Path) -> None:
    """Copy ``tool`` to ``dest`` under ``top`` (with its package's .libs dir), readable by everyone."""
    remove_tree(top)
    make_dir(top, 0o755)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if tool.is_dir():
        shutil.copytree(tool, dest, symlinks=True)
    else:
        shutil.copy2(tool, dest)
    if pkg is not None and (pkg.parent / f"{pkg.name}.libs").is_dir():
        shutil.copytree(pkg.parent / f"{pkg.name}.libs", top / f"{pkg.name}.libs", symlinks=True)
    share_tree(top)
    (top / ".complete").touch()


def wheel_package_of(path: Path) -> Path | None:
    """The installed package `path` lies in when that package ships its own shared libraries in a
    ``<package>.libs`` dir beside it (a wheel repaired by auditwheel), else None."""
    for part in [path, *path.parents]:
        if part.parent != part and (part.parent / f"{part.name}.libs").is_dir():
            return part
    return None


def share_tree(path: Path) -> None:
    """Make a copied install readable by everyone: dirs and executables a+rx, other files a+r."""
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            item = os.path.join(dirpath, name)
            if os.path.islink(item):
                continue
            mode = os.stat(item).st_mode
            os.chmod(item, mode | (0o555 if os.path.isdir(item) or mode & 0o100 else 0o444))


def remove_tree(path: Path | str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def slug(key: str) -> str:
    """A dir name for a key ('db:week6-db' -> 'db-week6-db-1a2b3c4d'), unique by a hash of the key."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", key).strip("-.")[:40] or "engine"
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def check_name(name: str, what: str) -> str:
    if not NAME_RE.match(name) or ".." in name:
        raise ValueError(f"invalid {what} {name!r}: use letters, digits, '.', '_' and '-'")
    return name




# Locks by path, shared by every Engines object of this process (threads), beside the flock (processes).
_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def thread_lock(path: Path) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(str(path), threading.Lock())


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Held by one thread of one process at a time: a thread lock plus an flock on ``lock_path``."""
    with thread_lock(lock_path), open(lock_path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield

"""awslab's own files: the state directory and the remembered "current context".

The state directory is ``$AWSLAB_HOME`` or ``$XDG_STATE_HOME/awslab`` (``~/.local/state/awslab``).
It holds the local AWS (``local/``, owner-only: its identity, log, saved state and the engines'
data), ``locks/`` (one mutating command per stack, engine/locks.py), ``stacks/`` (how each stack
was built), ``connect/`` (0600 password files for psql / redis-cli), ``figures/<stack>/`` (what `drill --report`
and `demo caching --report` measured, for `awslab report`) and ``context.json``: the
target and stack that the last ``up`` used, so ``status``/``down`` with no arguments act on the
same stack. It never holds AWS credentials; the only secrets in it are the local AWS's own (its
Secrets Manager, in ``local/``) and the connect files, each readable by its owner alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from awslab.errors import UsageError

CONTEXT_FILE = "context.json"
CONTEXT_KEYS = ("target", "stack", "lab", "region", "profile", "endpoint_url", "class", "removed")


def state_dir() -> Path:
    home = os.environ.get("AWSLAB_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "awslab"


def cache_home() -> Path:
    """awslab's cache (``$XDG_CACHE_HOME/awslab``, ``~/.cache/awslab``): what can be made again at any
    time and is shared by every home of the user (the SDK's parsed models, the engines' templates)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "awslab"


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON so that a crash mid-write never leaves a half file (rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_durably(path: Path, data: bytes, prefix: str, suffix: str = "") -> None:
    """Replace ``path`` with ``data`` whole and on disk: written to a temporary file beside it
    (``prefix``, ``suffix``), flushed and fsynced, then renamed over it; on any failure the old file
    stays as it was and the temporary one is removed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """A 0600 file holding ``text``, created with that mode (never briefly readable, never an old
    file truncated in place: a reader holding it open would see the new secret), owned by us or by
    ``owner`` (uid, gid)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def read_json(path: Path) -> dict | None:
    """The file's JSON object, None if absent; a corrupted file is a usage error with the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise UsageError(f"awslab's state file {path} is corrupted",
                         f"delete it ({path}) and run the command again: it only remembers awslab's own settings; "
                         "no stack, resource or data is in it")
    return data


def load_current_context() -> dict:
    data = read_json(state_dir() / CONTEXT_FILE) or {}
    return {k: data[k] for k in CONTEXT_KEYS if isinstance(data.get(k), str)}


def save_current_context(values: dict) -> None:
    """Remember the target and stack of this command; the last class stays unless ``values`` names one."""
    kept = {"class": load_current_context().get("class")}
    write_json_atomic(state_dir() / CONTEXT_FILE,
                      {k: v for k, v in {**kept, **values}.items() if k in CONTEXT_KEYS and v})


def forget_current_stack(stack: str) -> None:
    """``stack`` is gone (`down`): a later command without --name must not act on it (a second
    `down` of it is still the quiet success it always is)."""
    current = load_current_context()
    if current.get("stack") == stack and current.get("removed") != stack:
        write_json_atomic(state_dir() / CONTEXT_FILE, {**current, "removed": stack})


def stack_record_path(stack: str) -> Path:
    return state_dir() / "stacks" / f"{stack}.json"


def save_stack_record(stack: str, record: dict) -> None:
    """How the stack was built (lab, lab file, --set overrides), so verify compares with that."""
    write_json_atomic(stack_record_path(stack), record)


def load_stack_record(stack: str) -> dict | None:
    return read_json(stack_record_path(stack))


def figures_dir(stack: str) -> Path:
    """Where `drill --report` and `demo caching --report` keep their figures for `awslab report`."""
    return state_dir() / "figures" / stack


def save_figures(stack: str, name: str, data: dict) -> Path:
    path = figures_dir(stack) / f"{name}.json"
    write_json_atomic(path, data)
    return path


def load_figures(stack: str) -> dict[str, dict]:
    """The stack's saved figures by name (drill, caching); a corrupted file is a usage error."""
    folder = figures_dir(stack)
    return {p.stem: read_json(p) or {} for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}

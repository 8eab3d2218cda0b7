"""Who the engines run as: ourselves, or (as root) an unprivileged account that must reach its files."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awslab.local.engines.base import EngineError

try:
    import fcntl
    import pwd
except ImportError:  # Windows: the engines are POSIX-only, but importing this module must still work
    fcntl = pwd = None  # type: ignore[assignment]

log = logging.getLogger("awslab.local.engines")


RUN_USER = "awslab"
RUN_USER_ENV = "AWSLAB_ENGINE_USER"




@dataclass(frozen=True)
class RunAs:
    """The account engines run as: ourselves, or (as root) an unprivileged one."""

    uid: int
    gid: int
    name: str

    @property
    def switch(self) -> bool:
        return self.uid != os.geteuid()

    def command(self, argv: list[str]) -> tuple[list[str], dict[str, Any]]:
        """``argv`` and the subprocess arguments that run it as this account, without root's
        supplementary groups.

        As root, through util-linux's ``setpriv`` when there is one: subprocess's own ``user=`` and
        ``group=`` make it ``fork`` the whole calling process (a child that changes its uid cannot
        share its parent's memory, as ``vfork``'s does), and a local AWS of 300 MB paid 15 ms and
        7 ms of CPU for each engine or tool it started, holding the GIL, against 2.5 ms. ``setpriv``
        execs the command in its place (the same pid), with the same uid, gid and no other groups."""
        if not self.switch:
            return argv, {}
        setpriv = _setpriv()
        if setpriv:
            return [setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--", *argv], {}
        return argv, {"user": self.uid, "group": self.gid, "extra_groups": []}

    def groups(self) -> set[int]:
        try:
            return set(os.getgrouplist(self.name, self.gid))
        except (OSError, KeyError):
            return {self.gid}


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv") or shutil.which("setpriv", path="/usr/bin:/bin")


def run_as() -> RunAs:
    """Ourselves unless root; as root, AWSLAB_ENGINE_USER, else the awslab system user, else nobody."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)
    wanted = os.environ.get(RUN_USER_ENV)
    entry = lookup_user(wanted) if wanted else (lookup_user(RUN_USER) or create_run_user() or lookup_user("nobody"))
    if entry is None or entry.pw_uid == 0:
        raise EngineError(f"no unprivileged account to run PostgreSQL as (tried {wanted or RUN_USER + ', nobody'}); "
                          f"create one or set {RUN_USER_ENV}")
    return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def lookup_user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def create_run_user() -> pwd.struct_passwd | None:
    """A dedicated system account (no home, no login), so engine files are not shared with other `nobody` daemons."""
    useradd = shutil.which("useradd") or shutil.which("useradd", path="/usr/sbin:/sbin")
    if not useradd:
        return None
    shell = next((s for s in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(s)), "/bin/false")
    cmd = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
           "--shell", shell, "--comment", "awslab local engines", RUN_USER]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            log.info("created system user %s to run local database engines", RUN_USER)
        else:
            log.debug("useradd %s failed: %s", RUN_USER, done.stderr.strip())
    return lookup_user(RUN_USER)  # also covers another process having created it meanwhile


def reachable_by(path: Path, who: RunAs) -> bool:
    """Whether `who` may traverse every dir from / down to `path` (mode bits only; ACLs are not read)."""
    groups = who.groups()
    for part in [path, *path.parents]:
        try:
            st = part.stat()
        except OSError:
            return False
        if st.st_uid == who.uid:
            bit = 0o100
        elif st.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True

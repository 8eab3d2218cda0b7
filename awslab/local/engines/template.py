"""The local AWS's golden image for PostgreSQL: a cluster initialised once, copied for each new DB instance.

``initdb`` writes the same files every time (its bootstrap was most of a new instance's start, and
of a lab's ``up`` on the instant profile). So each engine build, master user and database name gets
one *template*, made the first time it is needed and kept in awslab's cache (``~/.cache/awslab/
postgres-templates``, shared by the user's homes: it holds no instance's data or password): initdb,
awslab's settings, the write-ahead log reset (nothing but the catalog left to copy), the database
created in single-user mode (no server listens), a clean shutdown. A new instance's data dir is a
copy of it (``cp -a``), then made its own:

- **its own cluster.** A copy would share the template's system identifier, the number that ties
  a cluster's WAL, base backups and streaming replicas together (a replica refuses a primary of
  another identifier). Each copy gets a new one, written where PostgreSQL keeps it: in
  ``global/pg_control`` (with its CRC-32C again) and in the long header that starts each WAL
  segment. From then on it is as unrelated to the template and to every other copy as two
  ``initdb`` runs would be.
- **its own password.** The template's superuser has a password of the template's own (random,
  kept 0600 beside it, never the instance's); the copy starts with it and awslab at once stores
  the instance's password as a SCRAM verifier (``ALTER ROLE``), so the password itself never
  reaches the server. Nothing else differs between instances: the port is given on the command
  line, the role's settings are written by the engines after the copy.
- **its first base backup for free.** The copy before it starts is a cold backup of it: with
  automated backups on, that is its first base backup, the template's files hard-linked (neither
  ever changes again) and its own pg_control and WAL copied.
- **its standby and replicas from the same image.** That cold image (pg_control and WAL, kept in
  the engine's dir) with the template's files is where its Multi-AZ standby and read replicas
  start: ``standby.signal`` and the primary's connection as ``pg_basebackup -R`` writes them, and
  they stream what they lack, as a replica made from a snapshot catches up on RDS. Only while the
  primary keeps every segment since (same timeline, at most 32 segments on): else pg_basebackup.

A copy is itself made ahead of need: ``SPARES`` copies wait beside each template and a new
instance takes one by a rename (nothing to write on its critical path); taking one starts their
refill in the background.

Nothing an instance runs on is shared: its files are copied, not linked, so no instance can change
another's or the template. What a template cannot serve (templates off with
``AWSLAB_ENGINE_TEMPLATES=off``, no ``pg_resetwal`` beside the server, a ``pg_control`` awslab cannot
read, a failed copy) falls back to ``initdb``, and the instance's server log says why.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import struct
import time
from pathlib import Path

from awslab.home.state import cache_home
from awslab.local.engines import postgres
from awslab.local.engines.accounts import RunAs
from awslab.local.engines.base import SECRET_FILE, EngineError
from awslab.local.engines.children import run_tool
from awslab.local.engines.files import (
    chown_tree,
    exclusive,
    make_dir,
    remove_tree,
    write_private_for,
)

TEMPLATES_DIR = "_templates"   # under the engines' base: where a template is made before it is kept
TEMPLATES_ENV = "AWSLAB_ENGINE_TEMPLATES"
RECIPE = 2   # how a template is made (``_make``): a new recipe makes new templates
SPARES = 3   # ready copies kept beside a template: a lab's primary, standby and replica take one each
SPARES_DIR = "spares"
COLD_DIR = "cold"   # in an instance's engine dir: its cold image (pg_control and WAL before it started)
COMPLETE = ".complete"
# initdb's options for every engine (a template is one of them, so they are part of its name).
INITDB_OPTIONS = ("--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync",
                  # 1 MB WAL segments: archived every few seconds, a lab's archive stays small
                  "--wal-segsize=1")
PG_CONTROL = Path("global") / "pg_control"
WAL_SEGMENT = re.compile(r"[0-9A-F]{24}")
# XLogLongPageHeaderData: the short header (magic, info, timeline, page address, remaining length:
# 20 bytes, aligned to 24), then the system identifier; xlp_info's XLP_LONG_HEADER marks it.
XLP_SYSID_OFFSET = 24
XLP_LONG_HEADER = 0x0002


class TemplateUnusable(Exception):
    """The template path cannot serve this instance; str(e) says why (initdb is used instead)."""


# --- the system identifier in pg_control ------------------------------------------------------------

def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum PostgreSQL keeps at the end of ControlFileData."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc_offset(control: bytes) -> int:
    """Where ControlFileData's ``crc`` field is: its offset differs between major versions, and it
    is the one place where the CRC-32C of everything before it is stored (the rest is zeros)."""
    crc = 0xFFFFFFFF
    for offset in range(min(len(control), 1024) - 3):
        if offset >= 8 and offset % 4 == 0 and crc ^ 0xFFFFFFFF == struct.unpack_from("<I", control, offset)[0]:
            return offset
        crc = _CRC32C[(crc ^ control[offset]) & 0xFF] ^ (crc >> 8)
    raise TemplateUnusable("pg_control's layout is not one awslab can read (no CRC-32C found)")


def system_identifier(data: Path) -> int:
    """The cluster's system identifier (the first field of pg_control)."""
    return int(struct.unpack_from("<Q", (data / PG_CONTROL).read_bytes(), 0)[0])


def set_system_identifier(data: Path, identifier: int) -> None:
    """Make the cluster in ``data`` (shut down cleanly) one with ``identifier``: in pg_control (with its
    CRC again) and in the long page header that starts each WAL segment, which names the cluster the
    segment belongs to (a server refuses a segment of another). Files keep their owners."""
    path = data / PG_CONTROL
    control = bytearray(path.read_bytes())
    offset = _crc_offset(bytes(control))
    old = struct.unpack_from("<Q", control, 0)[0]
    patched = 0
    for segment in sorted((data / "pg_wal").iterdir()):
        if not (segment.is_file() and WAL_SEGMENT.fullmatch(segment.name)):
            continue
        with open(segment, "r+b") as wal:
            head = wal.read(XLP_SYSID_OFFSET + 8)
            if (len(head) == XLP_SYSID_OFFSET + 8 and struct.unpack_from("<H", head, 2)[0] & XLP_LONG_HEADER
                    and struct.unpack_from("<Q", head, XLP_SYSID_OFFSET)[0] == old):
                wal.seek(XLP_SYSID_OFFSET)
                wal.write(struct.pack("<Q", identifier))
                patched += 1
    if not patched:
        raise TemplateUnusable("no WAL segment of the template names its cluster where awslab looks for it")
    struct.pack_into("<Q", control, 0, identifier)
    struct.pack_into("<I", control, offset, crc32c(bytes(control[:offset])))
    with open(path, "r+b") as out:
        out.write(control)


def new_system_identifier() -> int:
    """As PostgreSQL makes one: the time in the high 32 bits, then bits that differ between clusters."""
    return (int(time.time()) << 32) | secrets.randbits(32)


# --- templates -----------------------------------------------------------------------------------

def templates_dir() -> Path | None:
    """Where templates are kept: awslab's cache, shared by every home of the user (a template holds
    no instance's data or password), or None when ``AWSLAB_ENGINE_TEMPLATES=off`` (initdb always)."""
    if os.environ.get(TEMPLATES_ENV, "on") == "off":
        return None
    return cache_home() / "postgres-templates"


def template_name(bindir: Path, version: str, user: str, dbname: str) -> str:
    """One template per server build, master user and database name, and awslab's settings (a
    change to them makes a new template rather than serving the old ones)."""
    facts = json.dumps([RECIPE, str(bindir), version, user, dbname, INITDB_OPTIONS, postgres.PG_CONF,
                        postgres.PG_HBA])
    return f"pg{version}-{hashlib.sha256(facts.encode()).hexdigest()[:12]}"


def ensure_template(base: Path, bindir: Path, runnable_bindir: Path, version: str, user: str, dbname: str,
                    who: RunAs) -> tuple[Path, str]:
    """The template's data dir and its superuser's password, made once (under a lock, so threads and
    processes starting instances at once make it once). It is made under ``base`` (where the engine
    user can write) and then moved into the cache, which only we read."""
    root = templates_dir()
    if root is None:
        raise TemplateUnusable(f"templates are off: {TEMPLATES_ENV}=off")
    if not (runnable_bindir / "pg_resetwal").exists():
        raise TemplateUnusable(f"no pg_resetwal beside {bindir / 'postgres'}")
    name = template_name(bindir, version, user, dbname)
    top = root / name
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with exclusive(root / f".{name}.lock"):
        if not (top / COMPLETE).exists():
            make_dir(base / TEMPLATES_DIR, 0o711)
            work = base / TEMPLATES_DIR / f"{name}.{secrets.token_hex(4)}"
            try:
                _make(work, runnable_bindir, version, user, dbname, who)
                remove_tree(top)
                shutil.move(str(work), str(top))
            finally:
                remove_tree(work)
    try:
        password = json.loads((top / SECRET_FILE).read_text())["password"]
    except (OSError, ValueError, KeyError) as exc:
        raise TemplateUnusable(f"the template {top} has no password: {exc}") from None
    return top / "data", password


def _make(top: Path, bindir: Path, version: str, user: str, dbname: str, who: RunAs) -> None:
    """initdb, awslab's settings, the WAL reset, the database: a cluster shut down cleanly."""
    remove_tree(top)
    make_dir(top, 0o711 if who.switch else 0o700)
    data, log_path = top / "data", top / "template.log"
    make_dir(data, 0o700, who)
    password = secrets.token_urlsafe(24)
    write_private_for(top / SECRET_FILE, json.dumps({"user": user, "password": password}))
    pwfile = top / ".pwfile"
    write_private_for(pwfile, password + "\n", who)
    started = time.monotonic()
    try:
        run_tool([str(bindir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}", *INITDB_OPTIONS],
                 who=who, log_path=log_path, cwd=data)
    finally:
        with contextlib.suppress(FileNotFoundError):
            pwfile.unlink()
    write_settings(data)
    # The WAL reset leaves only the catalog to copy (no initdb WAL), but marks the cluster
    # wal_level=minimal; the single-user run after it (making the database, before any server
    # listens: no port, no password) writes awslab's wal_level back into pg_control and shuts down
    # cleanly, so that a copy's first files are a valid base backup for point-in-time restores.
    run_tool([str(bindir / "pg_resetwal"), "-D", str(data)], who=who, log_path=log_path, cwd=data)
    create = "SELECT 1;"
    if dbname != "postgres":
        # FILE_COPY (PostgreSQL 15+) copies the files rather than logging each block: little WAL to copy.
        strategy = " STRATEGY = FILE_COPY" if int(version or 0) >= 15 else ""
        create = f"CREATE DATABASE {_identifier(dbname)}{strategy};"
    run_tool([str(bindir / "postgres"), "--single", "-D", str(data), "-c", "listen_addresses=", "postgres"],
             who=who, log_path=log_path, cwd=data, stdin_text=create + "\n")
    with open(log_path, "a") as out:
        out.write(f"awslab: template made in {time.monotonic() - started:.2f} s\n")
    (top / COMPLETE).touch()
    os.chmod(top, 0o700)


def write_settings(data: Path) -> None:
    """awslab's settings and client rules, after initdb's (read when called: a test may change them)."""
    with open(data / "postgresql.conf", "a") as conf:
        conf.write(postgres.PG_CONF)
    (data / "pg_hba.conf").write_text(postgres.PG_HBA)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def copy_template(template: Path, data: Path, log_path: Path) -> str:
    """Fill ``data`` (an empty dir) with the files of ``template``: a spare copy moved in when one
    is ready (a rename: nothing to write), else a copy made now. Which of the two it was.

    ``cp -a`` copies in a process of its own (1,300 files: in the local AWS's process the copy would
    wait on the GIL behind every request it serves), keeping the files' owner, the engine user who
    made the template, and their modes."""
    if take_spare(template, data):
        return "a spare copy"
    run_tool(["cp", "-a", f"{template}{os.sep}.", str(data)], who=None, log_path=log_path, cwd=data)
    return "a copy"


def new_cluster(template: Path, data: Path, log_path: Path) -> tuple[int, str]:
    """``data`` made a cluster of its own from ``template``: its files, then a new system identifier.
    (The identifier, how the files came.)"""
    how = copy_template(template, data, log_path)
    identifier = new_system_identifier()
    set_system_identifier(data, identifier)
    return identifier, how


# --- spares: copies made ahead of need ------------------------------------------------------------

def take_spare(template: Path, data: Path) -> bool:
    """Move a ready copy of ``template`` into ``data`` (an empty dir): True if one was taken. A
    rename is atomic, so two instances started at once never get the same spare."""
    spares = template.parent / SPARES_DIR
    for spare in sorted(spares.iterdir()) if spares.is_dir() else []:
        if spare.name.endswith(".tmp"):
            continue
        try:
            os.rename(spare, data)
            return True
        except FileNotFoundError:
            continue          # another instance took it first
        except OSError:
            return False      # another file system than the engines' (a copy it is, then)
    return False


def refill_spares(template: Path, want: int = SPARES) -> None:
    """Copy ``template`` until ``want`` spares are ready. One refiller at a time: another one, in
    this process or another, returns at once; a copy cut short (a process stopped) is removed by
    the next refiller, never taken (it is renamed into place only when whole)."""
    import fcntl

    spares = template.parent / SPARES_DIR
    spares.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(template.parent / ".spares.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        for stale in spares.glob("*.tmp"):
            remove_tree(stale)
        while len([p for p in spares.iterdir() if not p.name.endswith(".tmp")]) < want:
            tmp = spares / f"{time.time():.6f}-{secrets.token_hex(3)}.tmp"
            run_tool(["cp", "-a", str(template), str(tmp)], who=None, log_path=template.parent / "template.log")
            os.rename(tmp, spares / tmp.stem)
    finally:
        os.close(fd)


# --- standbys and replicas from the template ------------------------------------------------------

def keep_cold_image(data: Path, cold: Path) -> None:
    """What of a new copy is its own before it starts (pg_control and the WAL), kept aside: with the
    template's files, a standby or replica can start from that image and catch up by streaming, as
    from a base backup, with nothing to copy from the running server."""
    make_dir(cold, 0o700)
    _put_cold_image(data / PG_CONTROL, data / "pg_wal", cold / "pg_control", cold / "pg_wal")


def _put_cold_image(control: Path, wal: Path, to_control: Path, to_wal: Path) -> None:
    shutil.copy2(control, to_control)
    remove_tree(to_wal)
    shutil.copytree(wal, to_wal, symlinks=True)


def cold_segment(cold: Path) -> str | None:
    """The newest WAL segment of a cold image (its checkpoint is in it), by name."""
    names = sorted(p.name for p in (cold / "pg_wal").iterdir() if WAL_SEGMENT.fullmatch(p.name)) \
        if (cold / "pg_wal").is_dir() else []
    return names[-1] if names else None


def segments_apart(older: str, newer: str) -> int | None:
    """How many 1 MB segments ``newer`` is past ``older`` on the same timeline (None: another timeline)."""
    if older[:8] != newer[:8]:
        return None
    per_id = 0x100000000 // (1 << 20)   # segments per 4 GB of WAL at initdb's --wal-segsize=1
    number = lambda name: int(name[8:16], 16) * per_id + int(name[16:24], 16)  # noqa: E731
    return number(newer) - number(older)


def new_follower(template: Path, cold: Path, data: Path, conninfo: str, log_path: Path, who: RunAs) -> str:
    """``data`` made a standby of the instance whose cold image ``cold`` is: the template's files
    (a spare when ready), that image's pg_control and WAL, ``standby.signal`` and the primary's
    connection as ``pg_basebackup -R`` writes them. How the files came."""
    how = copy_template(template, data, log_path)
    _put_cold_image(cold / "pg_control", cold / "pg_wal", data / PG_CONTROL, data / "pg_wal")
    (data / "standby.signal").touch()
    with open(data / "postgresql.auto.conf", "a") as auto:
        escaped = conninfo.replace("\\", "\\\\").replace("'", "''")
        auto.write(f"primary_conninfo = '{escaped}'\n")
    for path in (data / PG_CONTROL, data / "pg_wal", data / "standby.signal", data / "postgresql.auto.conf"):
        chown_tree(path, who)
    return how


def conninfo(user: str, password: str, host: str, port: int) -> str:
    """A libpq connection string, each value quoted as libpq reads it."""
    def value(text: str) -> str:
        if re.fullmatch(r"[A-Za-z0-9_.-]+", text):
            return text
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return f"user={value(user)} password={value(password)} host={host} port={port} sslmode=disable"


def link_base_backup(template: Path, cold: Path, target: Path) -> None:
    """A first base backup of a copy of ``template`` not yet started, whose cold image is ``cold``: a
    cold copy is a valid base backup (recovery starts from its pg_control's checkpoint and replays the
    archive). Every file but pg_control and the WAL is the template's, unchanged, so it is
    hard-linked (both are read-only from now on: a restore copies a base backup, never changes it);
    where links cannot be made (another file system), copied.

    ``cp -rl`` makes the 1,300 links in a process of its own (in the local AWS's process they held
    the GIL, 30 ms a primary, behind every request it serves); its dirs are ours and 0700, as here."""
    try:
        run_tool(["cp", "-rl", "--", str(template), str(target)], who=None, log_path=template.parent / "template.log")
    except EngineError:
        remove_tree(target)
        _copy_base_backup(template, target)
    else:
        remove_tree(target / "pg_wal")
        (target / PG_CONTROL).unlink()
    _put_cold_image(cold / "pg_control", cold / "pg_wal", target / PG_CONTROL, target / "pg_wal")


def _copy_base_backup(template: Path, target: Path) -> None:
    """``link_base_backup``'s files where ``cp -rl`` could not link them, one by one."""
    for src_dir, dirnames, filenames in os.walk(template):
        rel = Path(src_dir).relative_to(template)
        if rel.parts[:1] == ("pg_wal",):
            continue
        (target / rel).mkdir(mode=0o700, exist_ok=True)
        for name in filenames:
            if rel / name == PG_CONTROL:
                continue
            try:
                os.link(Path(src_dir) / name, target / rel / name)
            except OSError:
                shutil.copy2(Path(src_dir) / name, target / rel / name)

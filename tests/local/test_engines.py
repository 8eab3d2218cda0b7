"""Real PostgreSQL and Redis engines (awslab.local.engines), run from the wheels' binaries on 127.0.0.1.

One PostgreSQL primary is shared by the module (initdb costs about half a second); every other engine
is started by the test that needs it and stopped by it, and a module teardown stops whatever is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually

from awslab.local import engines as eng

pytestmark = pytest.mark.engines

try:
    PG_BINDIR = eng.postgres_bindir()
    REDIS_SERVER = eng.redis_server_path()
except eng.EngineUnavailable as exc:
    pytest.skip(f"engine binaries absent: {exc}", allow_module_level=True)
pg8000 = pytest.importorskip("pg8000.native", reason="pg8000 is the PostgreSQL client the engines use")
redis = pytest.importorskip("redis", reason="redis-py is the Redis client the engines use")
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

USER = "master"
PASSWORD = "Lab-Pw#7 'quoted' \"and\" spaced"  # quotes and spaces: nothing may split or log it
DBNAME = "labdb"
POLL_S = 10.0


def _gone(pid: int) -> bool:
    """No process, or only a zombie (an exited child nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _poll(check: Callable[[], Any], what: str, timeout: float = POLL_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout:.0f} s")
        time.sleep(0.05)


def _pg(info: dict, password: str = PASSWORD, database: str = DBNAME) -> Any:
    return pg8000.Connection(USER, host=info["host"], port=info["port"], password=password, database=database,
                             timeout=5)


def _query(info: dict, sql: str, **params: Any) -> list:
    conn = _pg(info)
    try:
        return conn.run(sql, **params)
    finally:
        conn.close()


def _redis(info: dict, password: str | None = PASSWORD) -> Any:
    # RESP2 and no retries, as the engines' own client: a refused AUTH is one round trip, not seconds of backoff.
    return redis.Redis(host=info["host"], port=info["port"], password=password, socket_timeout=5, protocol=2,
                       retry=Retry(NoBackoff(), 0))


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[eng.Engines]:
    engines = eng.Engines(tmp_path_factory.mktemp("engines"))
    yield engines
    engines.stop_all()


@pytest.fixture(scope="module")
def primary(engines: eng.Engines) -> dict:
    info = engines.start_postgres("db:primary", user=USER, password=PASSWORD, dbname=DBNAME)
    _query(info, "CREATE TABLE notes (id int PRIMARY KEY, body text)")
    return info


def test_primary_takes_scram_login_and_rejects_a_wrong_password(primary: dict) -> None:
    assert {"engine": "postgres", "host": "127.0.0.1", "user": USER, "dbname": DBNAME}.items() <= primary.items()
    assert {"port", "pid", "datadir", "log"} <= primary.keys() and not _gone(primary["pid"])
    assert os.getsid(primary["pid"]) == primary["pid"] != os.getsid(0)  # detached: a Ctrl-C here does not reach it
    assert _query(primary, "SELECT 1") == [[1]]
    assert _query(primary, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user") \
        == [[True]]
    assert _query(primary, "SELECT current_setting('listen_addresses'), current_setting('wal_level')") \
        == [["127.0.0.1", "replica"]]
    with pytest.raises(pg8000.DatabaseError) as err:
        _pg(primary, password="not-the-password")
    assert err.value.args[0]["C"] == "28P01"  # invalid_password


def test_replica_streams_rows_is_read_only_and_can_be_promoted(engines: eng.Engines, primary: dict) -> None:
    replica = engines.start_postgres_replica("db:replica", primary="db:primary")
    assert replica["port"] != primary["port"] and replica["role"] == "replica"
    _query(primary, "INSERT INTO notes VALUES (1, 'written on the primary')")
    _poll(lambda: _query(replica, "SELECT body FROM notes WHERE id = 1"), "the row on the replica")
    assert _query(replica, "SELECT pg_is_in_recovery()") == [[True]]
    with pytest.raises(pg8000.DatabaseError) as err:
        _query(replica, "INSERT INTO notes VALUES (2, 'x')")
    assert err.value.args[0]["C"] == "25006"  # read_only_sql_transaction

    engines.promote_postgres("db:replica")
    _poll(lambda: _query(replica, "SELECT NOT pg_is_in_recovery()")[0][0], "promotion")
    _query(replica, "INSERT INTO notes VALUES (2, 'written on the promoted replica')")
    assert engines.get("db:replica")["role"] == "primary"

    engines.stop("db:replica")
    assert _gone(replica["pid"]) and not Path(replica["datadir"]).exists() and engines.get("db:replica") is None


def test_snapshot_restore_postgres_carries_rows_written_before(engines: eng.Engines, primary: dict) -> None:
    _query(primary, "INSERT INTO notes VALUES (10, 'before the snapshot')")
    path = engines.snapshot("db:primary", "snap-db")
    _query(primary, "INSERT INTO notes VALUES (11, 'after the snapshot')")
    restored = engines.restore_postgres("db:restored", snapshot="snap-db")
    assert restored["port"] != primary["port"] and restored["user"] == USER and restored["dbname"] == DBNAME
    assert _query(restored, "SELECT id FROM notes WHERE id >= 10 ORDER BY id") == [[10]]
    assert _query(restored, "SELECT pg_is_in_recovery()") == [[False]]
    _query(restored, "INSERT INTO notes VALUES (12, 'the restore is writable')")
    with pytest.raises(pg8000.DatabaseError):
        _pg(restored, password="wrong")
    engines.stop("db:restored")
    assert _gone(restored["pid"]) and not Path(restored["datadir"]).exists()
    engines.delete_snapshot("snap-db")
    assert not path.exists()


def test_redis_requires_auth_and_replicates(engines: eng.Engines) -> None:
    primary = engines.start_redis("cache:primary", password=PASSWORD)
    assert {"engine": "redis", "host": "127.0.0.1"}.items() <= primary.items() and {"port", "pid", "datadir", "log"} \
        <= primary.keys()
    with pytest.raises(redis.exceptions.AuthenticationError, match="Authentication required"):
        _redis(primary, password=None).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        _redis(primary, password="wrong").ping()

    replica = engines.start_redis_replica("cache:replica", primary="cache:primary", password=PASSWORD)
    _redis(primary).set("greeting", "hello")
    _poll(lambda: _redis(replica).get("greeting") == b"hello", "the key on the replica")
    with pytest.raises(redis.exceptions.ReadOnlyError):
        _redis(replica).set("x", "1")
    engines.promote_redis("cache:replica")
    assert _redis(replica).set("x", "1")

    engines.stop("cache:replica")
    engines.stop("cache:primary")
    for info in (primary, replica):
        assert _gone(info["pid"]) and not Path(info["datadir"]).exists()


def test_redis_snapshot_restore_carries_a_key(engines: eng.Engines) -> None:
    source = engines.start_redis("cache:source", password=PASSWORD)
    _redis(source).set("kept", "yes")
    engines.snapshot("cache:source", "snap-cache")
    restored = engines.restore_redis("cache:restored", snapshot="snap-cache", password=PASSWORD)
    assert _redis(restored).get("kept") == b"yes"
    with pytest.raises(redis.exceptions.AuthenticationError):
        _redis(restored, password=None).get("kept")
    with pytest.raises(eng.EngineError, match="not postgres"):
        engines.restore_postgres("db:wrong", snapshot="snap-cache")
    engines.stop("cache:source")
    engines.stop("cache:restored")


def test_no_password_in_registry_logs_or_process_lists(engines: eng.Engines, primary: dict) -> None:
    replica = engines.start_postgres_replica("db:audit-replica", primary="db:primary")
    cache = engines.start_redis("cache:audit", password=PASSWORD)
    engines.snapshot("db:primary", "snap-audit")
    try:
        secret = PASSWORD.encode()
        assert secret not in engines.registry_path.read_bytes()
        logs = [Path(e["log"]) for e in engines.entries().values()]
        logs += list(engines.snapshots_dir.rglob("*.log"))
        assert len(logs) >= 4
        for path in logs:
            assert secret not in path.read_bytes(), path
        for info in (primary, replica, cache):
            assert secret not in Path(f"/proc/{info['pid']}/cmdline").read_bytes()
            # PGPASSWORD went to pg_basebackup only, never to an engine's environment.
            assert secret not in Path(f"/proc/{info['pid']}/environ").read_bytes()
        # At rest only in 0600 files: our secret.json, Redis' config, the replica's primary_conninfo.
        for path in [Path(replica["datadir"]) / "postgresql.auto.conf", Path(cache["datadir"]) / "redis.conf",
                     Path(primary["log"]).parent / eng.SECRET_FILE]:
            assert path.stat().st_mode & 0o077 == 0, path
    finally:
        engines.stop("db:audit-replica")
        engines.stop("cache:audit")
        engines.delete_snapshot("snap-audit")


@pytest.mark.skipif(os.geteuid() != 0, reason="the unprivileged engine user exists only when running as root")
def test_as_root_engines_run_unprivileged_with_private_data(primary: dict) -> None:
    stat = Path(f"/proc/{primary['pid']}/status").read_text()
    uid = int(next(line for line in stat.splitlines() if line.startswith("Uid:")).split()[1])
    assert uid != 0
    data = Path(primary["datadir"])
    assert data.stat().st_uid == uid and data.stat().st_mode & 0o777 == 0o700
    assert Path(primary["log"]).parent.stat().st_uid == 0  # the engine cannot touch its log or secret
    assert eng.reachable_by(data, eng.run_as())


def _ids(pid: int) -> tuple[int, int, str]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["Uid"].split()[0]), int(status["Gid"].split()[0]), status["Groups"].strip()


def test_an_engine_command_runs_as_the_engine_account_through_setpriv_or_subprocess(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from awslab.local.engines import accounts

    me = accounts.RunAs(os.geteuid(), os.getegid(), "me")
    assert me.command(["postgres", "-D", "x"]) == (["postgres", "-D", "x"], {})
    other = accounts.RunAs(os.geteuid() + 4242, 4343, "other")
    monkeypatch.setattr(accounts, "_setpriv", lambda: "/usr/bin/setpriv")
    assert other.command(["postgres"]) == (
        ["/usr/bin/setpriv", "--reuid=" + str(other.uid), "--regid=4343", "--clear-groups", "--", "postgres"], {})
    monkeypatch.setattr(accounts, "_setpriv", lambda: None)
    assert other.command(["postgres"]) == (["postgres"], {"user": other.uid, "group": 4343, "extra_groups": []})


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands engines to another user")
@pytest.mark.parametrize("setpriv", [True, False], ids=["setpriv", "subprocess"])
def test_as_root_an_engine_drops_to_the_engine_account_and_its_groups_either_way(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setpriv: bool) -> None:
    """The engine's registered pid is the engine itself (setpriv execs it in its place), as the engine
    user and group, without root's supplementary groups."""
    from awslab.local.engines import accounts

    if setpriv and not accounts._setpriv():
        pytest.skip("no setpriv on this machine")
    if not setpriv:
        monkeypatch.setattr(accounts, "_setpriv", lambda: None)
    engines = eng.Engines(tmp_path / "state")
    try:
        info = engines.start_redis("cache:as-who", password=PASSWORD)
        who = eng.run_as()
        assert _ids(info["pid"]) == (who.uid, who.gid, "")
        assert Path(f"/proc/{info['pid']}/comm").read_text().strip() == "redis-server"
        assert engines.stop_all() == [info["pid"]]
    finally:
        engines.stop_all()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands engines to another user")
def test_as_root_a_reachable_root_keeps_engines_inside_and_unreachable_binaries_are_copied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    outer = Path(tempfile.mkdtemp(prefix="awslab-engines-test-"))
    try:
        outer.chmod(0o755)
        private_bin = tmp_path / "bin"  # under pytest's 0700 dir: the engine user cannot exec from here
        private_bin.mkdir()
        (private_bin / "redis-server").write_bytes(REDIS_SERVER.read_bytes())
        (private_bin / "redis-server").chmod(0o700)
        monkeypatch.setattr(eng, "redis_server_path", lambda: private_bin / "redis-server")
        engines = eng.Engines(outer / "state")
        info = engines.start_redis("cache:inside", password=PASSWORD)
        assert Path(info["datadir"]).is_relative_to(outer / "state" / "engines")
        assert "/_bin/" in Path(f"/proc/{info['pid']}/cmdline").read_text()
        assert engines.stop_all() == [info["pid"]]
        assert not (outer / "state" / "engines").exists()
    finally:
        subprocess.run(["rm", "-rf", str(outer)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands engines to another user")
def test_as_root_postgres_from_a_wheel_the_engine_user_cannot_reach_starts_with_its_bundled_libraries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clone or venv under /root or a fresh mktemp -d: the binaries are copied for the engine user,
    and their bundled libraries (RPATH $ORIGIN/../../../<package>.libs) must come along."""
    import shutil

    site = tmp_path / "site-packages"   # under pytest's 0700 dir, as a venv under /root
    pkg = PG_BINDIR.parent.parent
    libs = pkg.parent / f"{pkg.name}.libs"
    if not libs.is_dir():
        pytest.skip(f"{pkg} ships no bundled libraries")
    shutil.copytree(pkg / PG_BINDIR.parent.name, site / pkg.name / PG_BINDIR.parent.name, symlinks=True)
    shutil.copytree(libs, site / libs.name, symlinks=True)
    private_bindir = site / pkg.name / PG_BINDIR.parent.name / "bin"
    assert not eng.reachable_by(private_bindir, eng.run_as())
    monkeypatch.setattr(eng, "postgres_bindir", lambda major=None: private_bindir)
    engines = eng.Engines(tmp_path / "state")
    try:
        info = engines.start_postgres("db:unreachable-wheel", user=USER, password=PASSWORD, dbname=DBNAME)
        assert _query(info, "SELECT 41 + 1") == [[42]]
        assert "/_bin/" in Path(f"/proc/{info['pid']}/cmdline").read_text()
    finally:
        engines.stop_all()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands engines to another user")
def test_as_root_threads_starting_from_an_unreachable_binary_share_one_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private_bin = tmp_path / "bin"   # under pytest's 0700 dir, as a clone under /root
    private_bin.mkdir()
    (private_bin / "redis-server").write_bytes(REDIS_SERVER.read_bytes())
    (private_bin / "redis-server").chmod(0o700)
    monkeypatch.setattr(eng, "redis_server_path", lambda: private_bin / "redis-server")
    engines = eng.Engines(tmp_path / "state")
    keys = [f"cache:copy{i}" for i in range(4)]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            started = list(pool.map(lambda key: engines.start_redis(key, password=PASSWORD), keys))
        binaries = {os.readlink(f"/proc/{info['pid']}/exe") for info in started}
        assert len(binaries) == 1 and "/_bin/" in binaries.pop()
    finally:
        engines.stop_all()


def test_another_process_stops_everything_the_first_started(tmp_path: Path) -> None:
    root = tmp_path / "state"
    first = eng.Engines(root)
    pg = first.start_postgres("db:x", user=USER, password=PASSWORD)
    cache = first.start_redis("cache:x", password=PASSWORD)
    first.snapshot("cache:x", "snap-x")
    code = ("import json, sys; from pathlib import Path; from awslab.local.engines import Engines; "
            "print(json.dumps(Engines(Path(sys.argv[1])).stop_all()))")
    done = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=60,
                          check=True)
    assert sorted(json.loads(done.stdout)) == sorted([pg["pid"], cache["pid"]])
    for info in (pg, cache):
        assert _gone(info["pid"]) and not Path(info["datadir"]).exists() and not Path(info["log"]).parent.exists()
    assert eng.Engines(root).entries() == {} and not (root / "snapshots").exists()
    assert first.stop_all() == []  # nothing left, and nothing to kill twice


def test_threads_share_one_registry(tmp_path: Path) -> None:
    engines = eng.Engines(tmp_path / "state")
    keys = [f"cache:t{i}" for i in range(4)]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            started = list(pool.map(lambda key: engines.start_redis(key, password=PASSWORD), keys))
        assert sorted(eng.Engines(tmp_path / "state").entries()) == keys
        assert len({info["port"] for info in started}) == 4
        assert sorted(engines.stop_all()) == sorted(info["pid"] for info in started)
    finally:
        engines.stop_all()   # a failure above must not leave redis-servers running


def test_the_registry_remembers_its_own_writes_and_sees_another_processs(tmp_path: Path) -> None:
    from awslab.local.engines.registry import Registry

    ours = Registry(tmp_path)
    ours.update("a", port=1, followers=["b"])
    got = ours.get("a")
    got["port"] = 99
    got["followers"].append("c")   # a copy: nothing a caller does reaches the registry
    assert ours.get("a") == {"port": 1, "followers": ["b"]}
    # Another process replaces the file (a rename, as every writer does): the next read sees it.
    code = ("import sys; from pathlib import Path; from awslab.local.engines.registry import Registry;"
            "Registry(Path(sys.argv[1])).update('a', port=2)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert ours.get("a") == {"port": 2, "followers": ["b"]}
    assert json.loads((tmp_path / "engines.json").read_text()) == {
        "version": 1, "engines": {"a": {"port": 2, "followers": ["b"]}}}
    ours.forget("a")
    assert ours.entries() == {} and Registry(tmp_path).entries() == {}


def test_stop_all_never_signals_a_pid_that_is_no_longer_an_engine(tmp_path: Path) -> None:
    engines = eng.Engines(tmp_path / "state")
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        entry = {"engine": "postgres", "pid": stranger.pid, "dir": str(tmp_path / "gone"), "status": "available"}
        engines.registry_path.write_text(json.dumps({"version": 1, "engines": {"db:stale": entry}}))
        assert engines.stop_all() == []
        assert stranger.poll() is None and engines.entries() == {}
    finally:
        stranger.kill()
        stranger.wait()


def test_keys_are_unique_and_unknown_keys_are_harmless(engines: eng.Engines, primary: dict) -> None:
    with pytest.raises(eng.EngineError, match="already exists"):
        engines.start_postgres("db:primary", user=USER, password=PASSWORD)
    assert engines.get("db:primary")["pid"] == primary["pid"]
    engines.stop("db:nothing-here")
    with pytest.raises(eng.EngineError, match="no postgres engine"):
        engines.start_postgres_replica("db:orphan", primary="db:nothing-here")
    with pytest.raises(ValueError):
        engines.snapshot("db:primary", "../escape")
    with pytest.raises(eng.EngineError, match="no engine snapshot"):
        engines.restore_redis("cache:none", snapshot="missing", password=PASSWORD)


def test_a_failed_start_names_its_log_and_is_cleaned_up_by_stop(engines: eng.Engines,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from awslab.local.engines import postgres

    monkeypatch.setattr(postgres, "PG_CONF", postgres.PG_CONF + "no_such_setting = 1\n")
    with pytest.raises(eng.EngineError, match=r"exited with code \d+ while starting; see .*server\.log") as err:
        engines.start_postgres("db:broken", user=USER, password=PASSWORD)
    entry = engines.get("db:broken")
    assert entry["status"] == "failed" and entry["log"] in str(err.value) and Path(entry["log"]).exists()
    assert "no_such_setting" in Path(entry["log"]).read_text()
    engines.stop("db:broken")
    assert engines.get("db:broken") is None and not Path(entry["dir"]).exists()


def test_missing_binaries_name_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from awslab.local.engines import binaries

    list(binaries.pg_candidates())   # a process that looked before (what it learnt then must not hide what is gone)
    with monkeypatch.context() as patch:
        patch.setattr(binaries, "package_dir", lambda name: None)
        patch.setattr(binaries, "SYSTEM_PG_DIR", tmp_path / "none")
        patch.setenv("PATH", str(tmp_path))
        with pytest.raises(eng.EngineUnavailable, match=r"PostgreSQL server binaries not found: pip install"):
            eng.postgres_bindir()
        with pytest.raises(eng.EngineUnavailable, match=r"redis-server not found: pip install"):
            eng.redis_server_path()
    with pytest.raises(eng.EngineUnavailable, match=r"PostgreSQL 99 server binaries not found \(found "):
        eng.postgres_bindir("99")


def test_a_binarys_version_is_asked_once_and_again_when_the_binary_changes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What `postgres --version` says is kept in awslab's cache with the binary's size, mtime and
    inode: a new process reads it (no process started), a changed binary or a damaged cache asks again."""
    from awslab.local.engines import binaries

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    runs = tmp_path / "runs"
    binary = tmp_path / "bin" / "postgres"
    binary.parent.mkdir()

    def install(version: str) -> None:
        binary.write_text(f"#!/bin/sh\necho run >> {runs}\necho 'postgres (PostgreSQL) {version}'\n")
        binary.chmod(0o755)

    def asked() -> tuple[str, str, int]:
        binaries.said_version.cache_clear()   # as a new process
        return binaries.pg_major(binary.parent), binaries.pg_version(binary.parent), \
            len(runs.read_text().splitlines()) if runs.exists() else 0

    install("16.14")
    assert asked() == ("16", "16.14", 1)
    assert asked() == ("16", "16.14", 1)   # from the cache: nothing ran
    install("18.6")                        # another binary in its place (its size and mtime differ)
    assert asked() == ("18", "18.6", 2)
    (tmp_path / "cache" / "awslab" / binaries.VERSIONS_FILE).write_text("{not json")
    assert asked() == ("18", "18.6", 3)
    assert asked() == ("18", "18.6", 3)
    binaries.said_version.cache_clear()
    assert binaries.said_version(tmp_path / "bin" / "absent") == ""
    broken = tmp_path / "bin" / "redis-server"   # a library missing: it fails and says nothing
    broken.write_text(f"#!/bin/sh\necho run >> {runs}\nexit 127\n")
    broken.chmod(0o755)
    for _ in range(2):
        binaries.said_version.cache_clear()
        assert binaries.said_version(broken) == ""
    assert len(runs.read_text().splitlines()) == 5   # asked each time: no answer was kept


def test_follow_port__repoints_a_replica_whose_conninfo_quotes_its_own_quotes(tmp_path):
    from awslab.local.engines.postgres import follow_port

    auto = tmp_path / "postgresql.auto.conf"
    auto.write_text("# Do not edit\nprimary_conninfo = 'user=lab password=''a''b'' host=127.0.0.1 port=5433 "
                    "sslmode=disable'\nother = 'port=1'\n")
    follow_port(tmp_path, 61000)
    assert auto.read_text() == ("# Do not edit\nprimary_conninfo = 'user=lab password=''a''b'' host=127.0.0.1 port=61000 "
                                "sslmode=disable'\nother = 'port=1'\n")


def test_reap_strays__stops_an_unregistered_engine_in_our_dirs_and_spares_the_registered(engines: eng.Engines,
                                                                                        primary: dict) -> None:
    import subprocess

    from awslab.local.engines.children import pid_alive as alive

    stray_dir = engines.base() / "stray-from-a-killed-server"
    stray_dir.mkdir(exist_ok=True)
    from awslab.local.engines.children import free_port

    stray = subprocess.Popen([str(eng.redis_server_path()), "--port", str(free_port()), "--save", ""], cwd=stray_dir,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    elsewhere = subprocess.Popen([str(eng.redis_server_path()), "--port", str(free_port()), "--save", ""], cwd="/",
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        eventually(lambda: all(p.poll() is None and Path(f"/proc/{p.pid}/cwd").exists() for p in (stray, elsewhere)))
        assert engines.reap_strays() == [stray.pid]
        stray.wait(timeout=10)
        assert alive(elsewhere.pid) and _query(primary, "SELECT 1") == [[1]]   # the registered engine's workers too
    finally:
        for p in (stray, elsewhere):
            p.kill()
            p.wait()


def test_halting_the_engines_first_runs_the_work_already_asked_for(tmp_path) -> None:
    """`local stop` right after `down`: the final snapshot a delete asked for is still made."""
    from awslab.local.backing import Backing

    backing, done = Backing(tmp_path), []
    for n in range(6):   # every worker busy (deletes of several instances at once), more work queued
        backing.submit(f"rds.us-east-1.db{n}", lambda: time.sleep(0.3))
    backing.submit("rds.us-east-1.db0", lambda: done.append("final snapshot"))
    backing.halt_all()
    assert done == ["final snapshot"]


def test_a_standby_made_inside_its_primarys_creation_is_busy_for_reconcile(tmp_path) -> None:
    """Another stack's `up` reconciles every engine: a Multi-AZ standby still being started by its
    primary's creation job is busy, not dead (it was stopped and made again under a class's load)."""
    from awslab.local.backing import Backing

    backing, release = Backing(tmp_path), threading.Event()
    primary = "rds.us-east-1.s20-db"
    standby = backing.engines.standby_key(primary)
    backing.submit(primary, release.wait)
    try:
        assert backing.busy(standby) and backing.busy(primary)
        assert not backing.busy(backing.engines.standby_key("rds.us-east-1.other-db"))
    finally:
        release.set()
    backing.settle(5)
    assert not backing.busy(standby)
    backing.halt_all()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root keeps engine data outside the home")
def test_as_root_engine_data_is_never_under_the_temp_dir_and_goes_with_stop_all(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reboot or a temp cleaner must not take the databases while the local AWS still lists them."""
    import tempfile

    monkeypatch.delenv("AWSLAB_ENGINES_DIR", raising=False)   # the default, not the suite's scratch
    engines = eng.Engines(tmp_path / "state")   # pytest's 0700 dir: the engine user cannot reach it
    info = engines.start_redis("cache:where", password=PASSWORD)
    try:
        data = Path(info["datadir"]).resolve()
        assert data.is_relative_to(engines.fallback_base()) and data.is_relative_to("/var/lib/awslab/engines")
        assert not data.is_relative_to(Path(tempfile.gettempdir()).resolve())
    finally:
        engines.stop_all()
    assert not engines.fallback_base().exists()


def test_follow_port__the_last_upstream_line_is_the_one_re_pointed_and_kept(tmp_path: Path) -> None:
    """A base backup of a promoted standby carries the standby's old primary_conninfo and
    `pg_basebackup -R` appends its own: PostgreSQL reads the last, so re-pointing keeps that one
    (quotes and all) and drops the stale line, whatever else the file holds."""
    from awslab.local.engines.postgres import follow_port

    auto = tmp_path / "postgresql.auto.conf"
    auto.write_text("# Do not edit this file manually!\n"
                    "primary_conninfo = 'user=u host=127.0.0.1 port=1111 sslmode=disable'\n"
                    "work_mem = '4MB'\n"
                    "primary_conninfo = 'user=u passfile=''/x y'' host=127.0.0.1 port=2222 sslmode=disable'\n")
    follow_port(tmp_path, 3333)
    assert auto.read_text() == ("# Do not edit this file manually!\nwork_mem = '4MB'\n"
                                "primary_conninfo = 'user=u passfile=''/x y'' host=127.0.0.1 port=3333 sslmode=disable'\n")
    auto.write_text("work_mem = '4MB'\n")
    with pytest.raises(ValueError):
        follow_port(tmp_path, 3333)


def test_halt_engines__stops_every_engine_followers_first_and_a_stray_a_dying_server_was_starting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`local stop` after the server had to be killed: every registered engine halted (data kept,
    status stopped), the replicas before any primary, and an engine process of the home in no entry
    stopped too (a home of 30 stacks left engines running after `local stop`)."""
    import subprocess

    from awslab.local import manager
    from awslab.local.engines.children import free_port

    monkeypatch.setenv("AWSLAB_HOME", str(tmp_path / "home"))
    engines = eng.Engines(manager.local_dir() / "engines")
    started = [engines.start_redis(f"cache:n{i}", password=PASSWORD) for i in range(4)]
    for i in (2, 3):   # two of them replicas of the first
        engines.registry.update(f"cache:n{i}", role="replica", primary="cache:n0")
    stray_dir = engines.base() / "being-started-when-the-server-died"
    stray_dir.mkdir()
    stray = subprocess.Popen([str(eng.redis_server_path()), "--port", str(free_port()), "--save", ""], cwd=stray_dir,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    order: list[str] = []
    halt = eng.Engines.halt
    monkeypatch.setattr(eng.Engines, "halt", lambda self, key: (order.append(key), halt(self, key))[1])
    try:
        eventually(lambda: Path(f"/proc/{stray.pid}/cwd").exists())
        assert sorted(manager.halt_engines()) == [f"cache:n{i}" for i in range(4)]
        assert set(order[:2]) == {"cache:n2", "cache:n3"}, order
        assert all(_gone(info["pid"]) for info in started)
        assert {e["status"] for e in engines.entries().values()} == {"stopped"}
        assert stray.wait(timeout=10) is not None
    finally:
        stray.kill()
        engines.stop_all()


def test_view__an_instance_asking_again_gets_the_endpoint_it_could_not_see_at_first(tmp_path, monkeypatch) -> None:
    """An endpoint published while the local AWS could not yet tell it was in the instance's VPC
    (the instance had asked before): its next ask opens its own listener, instead of handing it the
    outside one for good (where the VPC drops a private endpoint's connections: CI's cyd FAIL)."""
    from awslab.local.backing import Backing
    from awslab.local.engines.children import free_port

    backing, in_vpc = Backing(tmp_path), {"now": False}
    monkeypatch.setattr(backing.network, "sees", lambda source, endpoint: in_vpc["now"])
    endpoint = "lab-db.aaaaaaaaaa.us-east-1.rds.amazonaws.com:5432"
    try:
        assert backing.view("i-0123") == {}   # the instance asks first: nothing is up yet
        backing.publish(endpoint, key="rds.us-east-1.lab-db", status="available", port=free_port())
        outside = backing.read_map()[endpoint]["port"]
        assert backing.view("i-0123")[endpoint]["port"] == outside   # not known as its VPC's yet
        in_vpc["now"] = True
        mine = backing.view("i-0123")[endpoint]["port"]
        assert mine != outside and backing.read_map()[endpoint]["views"]["i-0123"]["port"] == mine
        assert backing.view("i-0123")[endpoint]["port"] == mine   # opened once
    finally:
        backing.halt_all()


def test_failover__the_standby_is_promoted_during_awss_failover_time_not_after_it():
    """A Multi-AZ failover's downtime is AWS's failover time, which includes the standby's
    promotion: the promotion runs while the pause does (a loaded machine's slow promotion no
    longer adds to the time the lab teaches), and the key goes to the new primary only once both
    are over."""
    import contextlib

    from awslab.local.engines.pg_standby import PostgresStandby

    crashed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    order: list[str] = []

    class Registry:
        @contextlib.contextmanager
        def changing(self):
            order.append("swap")
            yield engines

    engines = {"k": {"key": "k", "pid": crashed.pid, "engine": "postgres"},
               "k.standby": {"key": "k.standby", "pid": 1, "engine": "postgres"}}

    class Fake:
        registry = Registry()
        standby_key = staticmethod(PostgresStandby.standby_key)

        def _running(self, key, engine):
            return engines[key]

        def _pg_ctl_promote(self, entry):
            order.append("promote")
            time.sleep(0.4)
            order.append("promoted")

        def get(self, key):
            return engines.get(key)

        def _role_conf(self, entry):
            pass

        def _reload(self, entry):
            pass

    def pause():
        order.append("pause")
        time.sleep(0.6)
        order.append("paused")

    began = time.monotonic()
    try:
        new = PostgresStandby.failover(Fake(), "k", pause=pause)
    finally:
        crashed.kill()
        crashed.wait()
    took = time.monotonic() - began
    assert 0.6 <= took < 0.95, took   # the longer of 0.6 and 0.4, not their sum
    assert order.index("promoted") < order.index("swap") and order.index("paused") < order.index("swap"), order
    assert new["role"] == "primary" and new["key"] == "k"

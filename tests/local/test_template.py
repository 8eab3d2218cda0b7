"""PostgreSQL instances made from the home's template (awslab.local.engines.template), not by initdb.

Each copy must be a cluster of its own (system identifier, data, password), replicate and restore as
an initdb'd one does, and where no template can serve, initdb runs and the server log says why.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from awslab.local import engines as eng
from awslab.local.engines import template

USER = "master"
PASSWORD = "Tpl-Pw#7 'quoted' spaced"
DBNAME = "labdb"


def test_crc32c__the_castagnoli_check_value() -> None:
    assert template.crc32c(b"123456789") == 0xE3069283


def _fake_cluster(root: Path, sysid: int, crc_at: int = 296) -> Path:
    """A data dir with a pg_control (identifier, fields, CRC-32C at ``crc_at``, zeros) and two WAL
    segments: one of this cluster, one of another."""
    data = root / "data"
    (data / "global").mkdir(parents=True)
    (data / "pg_wal").mkdir()
    body = struct.pack("<Q", sysid) + bytes(i % 251 for i in range(8, crc_at))
    control = body + struct.pack("<I", template.crc32c(body))
    (data / "global" / "pg_control").write_bytes(control + bytes(8192 - len(control)))
    for name, owner in (("00000001000000000000000A", sysid), ("00000001000000000000000B", 99)):
        header = struct.pack("<HHIQI4xQ", 0xD113, template.XLP_LONG_HEADER, 1, 0, 0, owner)
        (data / "pg_wal" / name).write_bytes(header + bytes(100))
    return data


def test_set_system_identifier__pg_control_and_its_wal_segments_renamed_crc_valid(tmp_path: Path) -> None:
    data = _fake_cluster(tmp_path, 1234)
    template.set_system_identifier(data, 5678)
    control = (data / "global" / "pg_control").read_bytes()
    assert template.system_identifier(data) == 5678
    assert struct.unpack_from("<I", control, 296)[0] == template.crc32c(control[:296])
    wal = {p.name: struct.unpack_from("<Q", p.read_bytes(), template.XLP_SYSID_OFFSET)[0]
           for p in (data / "pg_wal").iterdir()}
    assert wal == {"00000001000000000000000A": 5678, "00000001000000000000000B": 99}   # another cluster's: left


def test_set_system_identifier__a_pg_control_without_a_crc_is_unusable_and_left_as_it_was(tmp_path: Path) -> None:
    data = _fake_cluster(tmp_path, 1234)
    control = data / "global" / "pg_control"
    control.write_bytes(control.read_bytes()[:8] + bytes(8184))
    before = control.read_bytes()
    with pytest.raises(template.TemplateUnusable, match="pg_control"):
        template.set_system_identifier(data, 5678)
    assert control.read_bytes() == before


try:
    eng.postgres_bindir()
    HAVE_PG = True
except eng.EngineUnavailable:
    HAVE_PG = False
needs_pg = pytest.mark.skipif(not HAVE_PG, reason="no PostgreSQL binaries")


@pytest.mark.parametrize("links", [True, False], ids=["cp-links", "copied"])
def test_a_first_base_backup__the_templates_files_and_its_own_control_and_wal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool) -> None:
    """The template's files hard-linked by ``cp -rl`` (copied one by one where it cannot link), its
    pg_control and WAL those of the copy's cold image, never the template's."""
    tpl = tmp_path / "tpl" / "data"
    for rel, body in {"PG_VERSION": "16\n", "base/5/1259": "catalog", "global/1262": "databases",
                      "global/pg_control": "template's control", "pg_wal/000000010000000000000001": "template wal",
                      "pg_wal/archive_status/.keep": ""}.items():
        (tpl / rel).parent.mkdir(parents=True, exist_ok=True)
        (tpl / rel).write_text(body)
    for d in [tpl, *tpl.rglob("*")]:
        if d.is_dir():
            d.chmod(0o700)   # as initdb leaves them
    cold = tmp_path / "cold"
    (cold / "pg_wal").mkdir(parents=True, mode=0o700)
    (cold / "pg_control").write_text("copy's control")
    (cold / "pg_wal" / "000000010000000000000002").write_text("copy's wal")
    if not links:
        def no_links(*a, **kw):
            raise eng.EngineError("cp: cannot create hard link: Invalid cross-device link")
        monkeypatch.setattr(template, "run_tool", no_links)
    target = tmp_path / "backup" / "data"
    target.parent.mkdir()
    template.link_base_backup(tpl, cold, target)
    files = {p.relative_to(target).as_posix(): p for p in target.rglob("*") if p.is_file()}
    assert sorted(files) == ["PG_VERSION", "base/5/1259", "global/1262", "global/pg_control",
                             "pg_wal/000000010000000000000002"]
    for rel in ("PG_VERSION", "base/5/1259", "global/1262"):
        assert files[rel].read_text() == (tpl / rel).read_text()
        assert files[rel].stat().st_ino == (tpl / rel).stat().st_ino   # one by one, linked too where it can
    assert files["global/pg_control"].read_text() == "copy's control" and files["global/pg_control"].stat().st_nlink == 1
    assert (tpl / "global" / "pg_control").read_text() == "template's control"
    assert all(d.stat().st_mode & 0o077 == 0 for d in [target, *target.rglob("*")] if d.is_dir())


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[eng.Engines]:
    engines = eng.Engines(tmp_path_factory.mktemp("template-engines"))
    yield engines
    engines.stop_all()


def _query(info: dict, sql: str, password: str = PASSWORD, user: str = USER) -> list:
    import pg8000.native

    conn = pg8000.native.Connection(user, host=info["host"], port=info["port"], password=password,
                                    database=DBNAME, timeout=5)
    try:
        return conn.run(sql)
    finally:
        conn.close()


def _template_of(info: dict) -> Path:
    """The template dir an instance's server log says it was copied from."""
    import re

    name = re.search(r"awslab: data dir from the template (\S+) ", Path(info["log"]).read_text()).group(1)
    return template.templates_dir() / name


def _spares_ready(tpl: Path) -> list[Path]:
    """Wait (bounded) until the template's spare copies are all made, then list them."""
    import time

    deadline = time.monotonic() + 30
    while True:
        spares = sorted((tpl / template.SPARES_DIR).iterdir()) if (tpl / template.SPARES_DIR).is_dir() else []
        whole = [p for p in spares if not p.name.endswith(".tmp")]
        if len(whole) == template.SPARES and len(spares) == len(whole):
            return whole
        assert time.monotonic() < deadline, f"spares of {tpl.name}: {[p.name for p in spares]}"
        time.sleep(0.05)


@needs_pg
@pytest.mark.engines
def test_copies_are_clusters_of_their_own__identifier_data_and_password(engines: eng.Engines) -> None:
    a = engines.start_postgres("db:a", user=USER, password=PASSWORD, dbname=DBNAME)
    b = engines.start_postgres("db:b", user=USER, password="another-" + PASSWORD, dbname=DBNAME)
    tpl = _template_of(a)
    assert _template_of(b) == tpl
    tpl_id = template.system_identifier(tpl / "data")
    ids = [_query(a, "SELECT system_identifier FROM pg_control_system()")[0][0],
           _query(b, "SELECT system_identifier FROM pg_control_system()", password="another-" + PASSWORD)[0][0]]
    assert len({tpl_id, *ids}) == 3

    _query(a, "CREATE TABLE only_in_a (n int)")
    _query(a, "INSERT INTO only_in_a VALUES (1)")
    c = engines.start_postgres("db:c", user=USER, password=PASSWORD, dbname=DBNAME)   # after a wrote
    for other, pw in ((b, "another-" + PASSWORD), (c, PASSWORD)):
        assert _query(other, "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'", password=pw) == [[0]]
    # No file of an instance is the template's: what one writes, no other instance can see.
    rel = Path(a["datadir"]) / _query(a, "SELECT pg_relation_filepath('pg_class')")[0][0]
    assert rel.stat().st_nlink == 1 and rel.stat().st_ino != (tpl / "data" / rel.relative_to(a["datadir"])).stat().st_ino

    # Its master password is the one given; the template's own is refused.
    import pg8000.native

    boot = json.loads((tpl / eng.SECRET_FILE).read_text())["password"]
    with pytest.raises(pg8000.native.DatabaseError) as err:
        _query(a, "SELECT 1", password=boot)
    assert err.value.args[0]["C"] == "28P01"
    assert _query(a, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user") \
        == [[True]]
    assert boot not in Path(a["log"]).read_text() and PASSWORD not in Path(a["log"]).read_text()
    for key in ("db:a", "db:b", "db:c"):
        engines.stop(key)


@needs_pg
@pytest.mark.engines
def test_a_copy_with_backups__standby_and_replica_follow_and_its_first_base_backup_restores(
        engines: eng.Engines) -> None:
    import time

    p = engines.start_postgres("db:p", user=USER, password=PASSWORD, dbname=DBNAME, backups=True)
    engines.start_standby("db:p")
    replica = engines.start_postgres_replica("db:p-replica", primary="db:p")
    _query(p, "CREATE TABLE notes (n int)")
    _query(p, "INSERT INTO notes VALUES (1)")   # acknowledged only once the standby has it
    assert _query(p, "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'awslab_standby'") \
        == [["sync"]]
    deadline = time.monotonic() + 10
    while _query(replica, "SELECT count(*) FROM pg_class WHERE relname = 'notes'") != [[1]]:
        assert time.monotonic() < deadline, "the replica did not follow"
        time.sleep(0.05)

    for follower in (engines.get("db:p.standby"), replica):   # from the template and p's cold image
        assert "and the cold image of db:p, streaming from segment" in Path(follower["log"]).read_text()

    # The first base backup is the copy as it was before it started: the template's files, linked.
    first = engines.base_backups("db:p")[0]
    tpl = _template_of(p)
    linked = Path(first["path"]) / "data" / "PG_VERSION"
    assert linked.stat().st_ino == (tpl / "data" / "PG_VERSION").stat().st_ino
    time.sleep(1.1)
    when = time.time()
    time.sleep(0.3)
    _query(p, "DROP TABLE notes")
    restored = engines.restore_postgres_to_time("db:undo", source="db:p", when=when)
    assert _query(restored, "SELECT n FROM notes") == [[1]]
    assert _query(restored, "SELECT system_identifier FROM pg_control_system()") \
        == _query(p, "SELECT system_identifier FROM pg_control_system()")   # a restore is of the same cluster
    # The window starts once the instance has its password: a restore to its first moment has it too.
    earliest = engines.restore_postgres_to_time("db:earliest", source="db:p", when=first["finished"])
    assert _query(earliest, "SELECT 1") == [[1]]
    for key in ("db:earliest", "db:undo", "db:p-replica", "db:p"):
        engines.stop(key)


@needs_pg
@pytest.mark.engines
def test_where_no_template_can_serve__initdb_runs_and_the_server_log_says_why(
        engines: eng.Engines, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from awslab.local.engines import postgres

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))   # templates of this test alone

    # Templates turned off.
    monkeypatch.setenv(template.TEMPLATES_ENV, "off")
    off = engines.start_postgres("db:off", user=USER, password=PASSWORD, dbname=DBNAME)
    assert "no template can serve this instance (templates are off: AWSLAB_ENGINE_TEMPLATES=off); running initdb" in Path(off["log"]).read_text()
    assert _query(off, "SELECT 1") == [[1]]
    monkeypatch.delenv(template.TEMPLATES_ENV)

    # A template whose pg_control awslab cannot read.
    first = engines.start_postgres("db:first", user=USER, password=PASSWORD, dbname=DBNAME)
    tpl = _template_of(first)
    _spares_ready(tpl)
    for data in [tpl / "data", *(tpl / template.SPARES_DIR).iterdir()]:   # the template and its ready copies
        control = data / "global" / "pg_control"
        control.write_bytes(control.read_bytes()[:8] + bytes(len(control.read_bytes()) - 8))
    broken = engines.start_postgres("db:broken-template", user=USER, password=PASSWORD, dbname=DBNAME)
    log = Path(broken["log"]).read_text()
    assert "no template can serve this instance (pg_control's layout" in log and "running initdb" in log
    assert _query(broken, "SELECT 1") == [[1]]

    # Other settings: a template of their own, made from them.
    monkeypatch.setattr(postgres, "PG_CONF", postgres.PG_CONF + "work_mem = '5MB'\n")
    changed = engines.start_postgres("db:changed", user=USER, password=PASSWORD, dbname=DBNAME)
    assert _template_of(changed) != _template_of(first)
    assert _query(changed, "SHOW work_mem") == [["5MB"]]
    for key in ("db:off", "db:first", "db:broken-template", "db:changed"):
        engines.stop(key)


@needs_pg
@pytest.mark.engines
def test_spares__instances_started_at_once_each_take_their_own_and_they_are_made_again(engines: eng.Engines) -> None:
    from concurrent.futures import ThreadPoolExecutor

    first = engines.start_postgres("db:s0", user=USER, password=PASSWORD, dbname=DBNAME)
    tpl = _template_of(first)
    _spares_ready(tpl)
    keys = [f"db:s{i}" for i in range(1, 1 + template.SPARES)]
    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        started = list(pool.map(lambda k: engines.start_postgres(k, user=USER, password=PASSWORD, dbname=DBNAME), keys))
    assert all("(a spare copy)" in Path(info["log"]).read_text() for info in started)
    ids = {_query(info, "SELECT system_identifier FROM pg_control_system()")[0][0] for info in started}
    assert len(ids) == len(keys)
    assert len(_spares_ready(tpl)) == template.SPARES   # made again in the background
    for key in ["db:s0", *keys]:
        engines.stop(key)


@needs_pg
@pytest.mark.engines
def test_a_replica_of_a_primary_far_past_its_cold_image_is_a_pg_basebackup(engines: eng.Engines) -> None:
    p = engines.start_postgres("db:far", user=USER, password=PASSWORD, dbname=DBNAME)
    _query(p, "CREATE TABLE t (n int)")
    for n in range(eng.COLD_FOLLOW_MAX_SEGMENTS + 2):   # a row, then a new WAL segment, each time
        _query(p, f"INSERT INTO t VALUES ({n})")
        _query(p, "SELECT pg_switch_wal()")
    replica = engines.start_postgres_replica("db:far-replica", primary="db:far")
    assert "cold image" not in Path(replica["log"]).read_text()
    assert _query(replica, "SELECT count(*) FROM t") == [[eng.COLD_FOLLOW_MAX_SEGMENTS + 2]]
    for key in ("db:far-replica", "db:far"):
        engines.stop(key)

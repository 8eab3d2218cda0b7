"""What the measurements that write and query the lab's database (`drill`, the demos, `maintenance`'s
probe) say differently to each engine the local AWS runs for real: PostgreSQL, and the MySQL
family (MariaDB standing in for MySQL). One flow each, handed a ``Dialect``.

Both speak through one session shape, pg8000's: ``run(sql, **params)`` with ``:name`` parameters,
returning the rows (``live.pg_connect``; a PyMySQL session from ``live_mysql.my_connect`` wrapped in
``MySession``), over TLS as RDS requires it. SQL both engines read alike stays in the commands;
here is only what differs: the demo's orders table and its report (MySQL has no
``percentile_cont`` or ``generate_series``), how a Single-AZ commit is had beside a Multi-AZ one,
and the replica's lag as RDS reports it for the engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from awslab.errors import UsageError
from awslab.verify import live
from awslab.verify.live import Address

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class MySession:
    """A PyMySQL connection with pg8000's ``run``: ``:name`` parameters, the rows back."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def run(self, sql: str, **params) -> list[tuple]:
        with self.conn.cursor() as cur:
            if params:   # PyMySQL formats with %: a literal % is doubled, :name becomes %(name)s
                cur.execute(_PARAM.sub(r"%(\1)s", sql.replace("%", "%%")), params)
            else:
                cur.execute(sql)
            return [tuple(row) for row in cur.fetchall()]

    def close(self) -> None:
        self.conn.close()


def _my_connect(addr: Address, user: str, password: str, database: str) -> MySession:
    from awslab.verify.live_mysql import my_connect

    return MySession(my_connect(addr, user, password, database))


def _pg_lag(run, via, monitor, reader, replica: Address) -> Callable[[], float | None]:
    """The primary's view: from its flush of the WAL to the replica's report that it replayed it,
    the round trip across the AZs and the replay in it (None: nothing in flight)."""
    (name,) = reader.run("SHOW cluster_name")[0]   # its walreceiver's application_name on the primary

    def sample() -> float | None:
        rows = monitor.run("SELECT EXTRACT(EPOCH FROM replay_lag) FROM pg_stat_replication "
                           "WHERE application_name = :name", name=name)
        return float(rows[0][0]) * 1000 if rows and rows[0][0] is not None else None
    return sample


def _my_lag(run, via, monitor, reader, replica: Address) -> Callable[[], float | None]:
    """ReplicaLag as RDS reports it for MySQL: the replica's Seconds_Behind_Master (whole seconds).
    The master user may not read SHOW REPLICA STATUS (RDS gives it mysql.rds_replica_status), so
    it comes from the local AWS, as CloudWatch has it from RDS."""
    def sample() -> float | None:
        lag = ((live.endpoint_map(run, via) or {}).get(replica.endpoint) or {}).get("replica_lag_s")
        return None if lag is None else float(lag) * 1000
    return sample


def _pg_in_step(run, via, conn, primary: Address) -> bool:
    return bool(conn.run("SELECT count(*) > 0 FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')")[0][0])


# MySQL 8.0.26+ says Rpl_semi_sync_source_status; MariaDB, Rpl_semi_sync_master_status.
_SEMISYNC_ON = ("SELECT COUNT(*) > 0 FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN "
                "('RPL_SEMI_SYNC_MASTER_STATUS', 'RPL_SEMI_SYNC_SOURCE_STATUS') AND VARIABLE_VALUE = 'ON'")


def _my_in_step(run, via, conn, primary: Address) -> bool:
    """Semi-synchronous, and the standby's apply caught up: a new one replays the primary's binary
    log, which the master user cannot watch (the local AWS says how far behind it is)."""
    if not conn.run(_SEMISYNC_ON)[0][0]:
        return False
    lag = ((live.endpoint_map(run, via) or {}).get(primary.endpoint) or {}).get("standby_lag_s")
    return not lag


def _pg_no_table(exc: BaseException) -> bool:
    """pg8000's error for a table that does not exist (SQLSTATE 42P01, undefined_table)."""
    return bool(exc.args) and isinstance(exc.args[0], dict) and exc.args[0].get("C") == "42P01"


def _my_no_table(exc: BaseException) -> bool:
    """PyMySQL's error for a table that does not exist (ER_NO_SUCH_TABLE, 1146)."""
    return bool(exc.args) and exc.args[0] == 1146


@dataclass(frozen=True)
class Dialect:
    engine: str              # what the drill's JSON says: postgres / mysql
    words: str               # PostgreSQL / MySQL
    default_database: str
    connect: Callable[[Address, str, str, str], Any]
    orders_table: str        # the demo's orders ...
    seed_orders: str         # ... :n more of them
    analyze_orders: str
    report: str              # one report over them (:buckets, :k): a scan and a 95th percentile per category
    # A session's commits as the Multi-AZ instance makes them, then as a Single-AZ one (no wait for
    # the standby); None: no session can skip the wait (MySQL's is server-wide), so a drill commits
    # on a Single-AZ instance instead.
    commit_modes: tuple[str, str] | None
    lag_sampler: Callable[..., Callable[[], float | None]]
    # (run, via, a session on the primary, its Address) -> whether its commits wait for its standby
    # and the standby has applied what it received (a failover then is the standby's promotion alone).
    standby_in_step: Callable[..., bool]
    replication: str         # the Multi-AZ standby's, in a word
    standby: str             # how it commits, in words
    single_az: str           # how the Single-AZ figure was had
    lag_label: str
    lag_words: str           # what the lag figure is
    # Whether an error says the table does not exist (a replica not yet at the statement that made it).
    no_table: Callable[[BaseException], bool]
    note: str = ""           # what stands in for the engine, when something does
    # AWS's figures that differ for the engine (drill's AWS_REFERENCE keys).
    aws_reference: dict[str, tuple[str, str]] = field(default_factory=dict)


POSTGRES = Dialect(
    engine="postgres", words="PostgreSQL", default_database="postgres", connect=live.pg_connect,
    orders_table="CREATE TABLE IF NOT EXISTS awslab_demo_orders (id bigserial PRIMARY KEY, customer int NOT NULL, "
                 "category text NOT NULL, amount numeric(10,2) NOT NULL, created timestamptz NOT NULL)",
    seed_orders="INSERT INTO awslab_demo_orders (customer, category, amount, created) "
                "SELECT (random() * 5000)::int, (ARRAY['books','games','tools','food','toys'])[1 + (random() * 4)::int], "
                "round((random() * 500)::numeric, 2), now() - random() * interval '365 days' "
                "FROM generate_series(1, :n)",
    analyze_orders="ANALYZE awslab_demo_orders",
    report="SELECT category, count(*), round(avg(amount), 2)::float8, "
           "percentile_cont(0.95) WITHIN GROUP (ORDER BY amount)::float8 "
           "FROM awslab_demo_orders WHERE customer % :buckets = :k GROUP BY category ORDER BY category",
    commit_modes=("SET synchronous_commit = on", "SET synchronous_commit = local"), lag_sampler=_pg_lag,
    standby_in_step=_pg_in_step,
    replication="synchronous", standby="synchronous: a commit returned only once it had the row",
    single_az="the same instance committing alone (synchronous_commit = local), as Single-AZ does",
    lag_label="replay lag p50 / p95 / max", no_table=_pg_no_table,
    lag_words="the primary saw it replayed {p50:.1f} ms after its own flush, p50, the round trip included",
)

MYSQL = Dialect(
    engine="mysql", words="MySQL", default_database="", connect=_my_connect,
    orders_table="CREATE TABLE IF NOT EXISTS awslab_demo_orders (id bigint AUTO_INCREMENT PRIMARY KEY, "
                 "customer int NOT NULL, category varchar(16) NOT NULL, amount decimal(10,2) NOT NULL, "
                 "created datetime NOT NULL)",
    # No generate_series: ten digits crossed six times (a recursive CTE of depth 10, under MySQL's
    # cte_max_recursion_depth of 1000).
    seed_orders="INSERT INTO awslab_demo_orders (customer, category, amount, created) "
                "WITH RECURSIVE d (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM d WHERE i < 9) "
                "SELECT FLOOR(RAND() * 5000), ELT(1 + FLOOR(RAND() * 5), 'books', 'games', 'tools', 'food', 'toys'), "
                "ROUND(RAND() * 500, 2), NOW() - INTERVAL FLOOR(RAND() * 31536000) SECOND "
                "FROM d a, d b, d c, d e, d f, d g LIMIT :n",
    analyze_orders="ANALYZE TABLE awslab_demo_orders",
    # No percentile_cont in MySQL: the nearest-rank 95th percentile over a window.
    report="SELECT category, COUNT(*), CAST(ROUND(AVG(amount), 2) AS DOUBLE), "
           "CAST(MIN(CASE WHEN rn >= 0.95 * cnt THEN amount END) AS DOUBLE) "
           "FROM (SELECT category, amount, ROW_NUMBER() OVER (PARTITION BY category ORDER BY amount) AS rn, "
           "COUNT(*) OVER (PARTITION BY category) AS cnt "
           "FROM awslab_demo_orders WHERE MOD(customer, :buckets) = :k) ranked GROUP BY category ORDER BY category",
    commit_modes=None, lag_sampler=_my_lag,
    standby_in_step=_my_in_step,
    replication="semi-synchronous", standby="semi-synchronous and lossless (AFTER_SYNC): a commit returned only once the standby had it",
    single_az="a Single-AZ instance of the same lab made beside it (MySQL's wait for the standby is "
              "server-wide: a session cannot skip it as PostgreSQL's synchronous_commit = local does)",
    lag_label="ReplicaLag (Seconds_Behind_Master) p50 / p95 / max", no_table=_my_no_table,
    lag_words="ReplicaLag, RDS's Seconds_Behind_Master for MySQL, read {p50:.0f} ms p50: whole seconds, so "
              "a lag under one reads 0",
    note="MySQL-compatible MariaDB stands in for MySQL here: RDS's Multi-AZ instance writes to its standby "
         "synchronously at the storage level, the local AWS's standby is a MariaDB replica with lossless "
         "semi-synchronous commits (the same promise: no acknowledged commit lost).",
    aws_reference={
        "multi_az_loss": ("0", "RDS User Guide, 'Multi-AZ DB instance deployments': synchronous replication to the "
                               "standby (the local AWS: MariaDB's lossless semi-synchronous replication)"),
        "replica_lag": ("seconds", "RDS User Guide, 'Monitoring read replication': for MySQL and MariaDB, ReplicaLag "
                                   "is Seconds_Behind_Master of SHOW REPLICA STATUS"),
    },
)

DIALECTS = {"postgres": POSTGRES, "mysql": MYSQL, "mariadb": MYSQL}   # MariaDB stands in for both


def dialect_of(db_raw: dict, command: str) -> Dialect:
    """The dialect of a DB instance's engine; another engine is refused in one line (exit 2) rather
    than failing on its handshake."""
    engine = db_raw.get("Engine") or "postgres"
    if engine not in DIALECTS:
        raise UsageError(f"{command} speaks PostgreSQL and MySQL; {db_raw.get('DBInstanceIdentifier', 'the DB')} "
                         f"runs {engine}", "`awslab failover` fails it over and `awslab verify` checks it; "
                         "--set database.engine=postgres (or mysql) for this command")
    return DIALECTS[engine]


def db_session(run, db_raw: dict, mapping, command: str, *, what: str = "the database",
               endpoint: dict | None = None) -> tuple[Dialect, Callable[[], Any], Address]:
    """The dialect of ``db_raw``'s engine and a factory of sessions to its endpoint (``endpoint``: another
    instance's, e.g. a read replica's, logged in as ``db_raw``'s master user) as ``mapping`` reaches it."""
    dialect = dialect_of(db_raw, command)
    ep = endpoint or db_raw["Endpoint"]
    addr = live.resolve(mapping, ep["Address"], ep["Port"])
    live.require_engine(addr, what)
    user, password = live.db_credentials(run, db_raw)
    database = db_raw.get("DBName") or dialect.default_database
    return dialect, (lambda: dialect.connect(addr, user, password, database)), addr

"""The SQL dialects' pure parts: PyMySQL spoken as pg8000 is (``:name`` parameters, a literal %
kept), and each engine RDS runs for real given its dialect, any other refused in one line."""

from __future__ import annotations

import pytest

from awslab.errors import UsageError
from awslab.verify.dialects import MYSQL, POSTGRES, MySession, dialect_of


class _Cursor:
    def __init__(self, sent: list) -> None:
        self.sent = sent

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def execute(self, sql, args=None) -> None:
        self.sent.append((sql, args))

    def fetchall(self):
        return [[1, "a"]]


class _Conn:
    def __init__(self) -> None:
        self.sent: list = []

    def cursor(self):
        return _Cursor(self.sent)


def test_my_session__named_parameters_become_pymysql_ones_and_a_literal_percent_is_doubled():
    conn = _Conn()
    rows = MySession(conn).run("SELECT 5 % 2, :lo, :hi FROM t WHERE n BETWEEN :lo AND :hi", lo=1, hi=2)
    assert rows == [(1, "a")]
    assert conn.sent == [("SELECT 5 %% 2, %(lo)s, %(hi)s FROM t WHERE n BETWEEN %(lo)s AND %(hi)s", {"lo": 1, "hi": 2})]
    MySession(conn).run("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%'")   # no parameters: sent as written
    assert conn.sent[-1] == ("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_%'", None)


def test_dialect_of__postgres_and_the_mysql_family_others_refused_in_one_line():
    assert dialect_of({"Engine": "postgres"}, "awslab drill") is POSTGRES
    assert dialect_of({"Engine": "mysql"}, "awslab drill") is MYSQL is dialect_of({"Engine": "mariadb"}, "x")
    assert MYSQL.commit_modes is None and POSTGRES.commit_modes is not None
    with pytest.raises(UsageError) as refused:
        dialect_of({"Engine": "oracle-ee", "DBInstanceIdentifier": "db"}, "awslab drill")
    assert "runs oracle-ee" in str(refused.value) and "\n" not in str(refused.value)


def test_no_table__each_drivers_error_for_a_missing_table_and_nothing_else():
    """A replica not yet at the table's creation answers so (drill counts it as rows not yet there)."""
    import pg8000.exceptions
    import pymysql.err

    missing_pg = pg8000.exceptions.DatabaseError({"S": "ERROR", "C": "42P01", "M": 'relation "awslab_drill" does not exist'})
    other_pg = pg8000.exceptions.DatabaseError({"S": "ERROR", "C": "25006", "M": "cannot execute INSERT in a read-only transaction"})
    assert POSTGRES.no_table(missing_pg) and not POSTGRES.no_table(other_pg)
    assert MYSQL.no_table(pymysql.err.ProgrammingError(1146, "Table 'lab.awslab_drill' doesn't exist"))
    assert not MYSQL.no_table(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"))
    assert not POSTGRES.no_table(ConnectionError("reset")) and not MYSQL.no_table(ConnectionError())

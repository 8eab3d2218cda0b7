"""`awslab engines`: the engines RDS offers with AWS's published limits and sources, and what a lab
and the local AWS do with each; an engine RDS offers but no lab runs is refused as such."""

from __future__ import annotations

import json

# AWS's published read-replica limits per source instance (USER_ReadRepl.html): 15 for MySQL,
# MariaDB, PostgreSQL (and Aurora Replicas per cluster), 5 for Oracle and SQL Server Enterprise, 3 for Db2.
PUBLISHED_REPLICAS = {"postgres": 15, "mysql": 15, "mariadb": 15, "aurora-postgresql": 15, "aurora-mysql": 15,
                      "oracle-ee": 5, "oracle-se2": 5, "sqlserver-ee": 5, "db2-se": 3, "db2-ae": 3}


def test_engines__the_catalogue_with_aws_limits_and_sources(awslab):
    got = awslab("engines", "--output", "json")
    assert got.code == 0, got.err
    data = json.loads(got.out)
    by = {e["engine"]: e for e in data["engines"]}
    assert set(by) >= set(PUBLISHED_REPLICAS) | {"sqlserver-se", "sqlserver-ex", "sqlserver-web"}
    for engine, limit in PUBLISHED_REPLICAS.items():
        assert by[engine]["max_replicas"] == limit, engine
    # Multi-AZ DB clusters: MySQL and PostgreSQL only.
    assert {e for e, row in by.items() if row["multi_az_cluster"]} == {"mysql", "postgres"}
    assert {e for e, row in by.items() if row["lab"]} == {"postgres", "mysql", "mariadb"}
    assert all(url.startswith("https://docs.aws.amazon.com/") for url in data["sources"].values())
    text = awslab("engines")
    assert text.code == 0 and "real server" in text.out and "Sources:" in text.out
    assert "yes: --set database.engine=postgres" in text.out


def test_an_engine_rds_offers_but_no_lab_runs__is_refused_as_such(awslab):
    got = awslab("up", "week6", "--set", "database.engine=oracle-ee")
    assert got.code == 2
    assert "an RDS engine awslab's labs do not run yet 'oracle-ee'" in got.err and "awslab engines" in got.err

"""Facts about what AWS offers that awslab validates against before any call: engines, versions,
ports, classes. One fact in one place: the lab loader, the planner and the cost estimate read here.
"""

from __future__ import annotations

import re

DB_ENGINES: dict[str, dict] = {
    # Major versions RDS offers for new instances (the lab passes the major; RDS picks the minor),
    # and the minor it picks: a current, not deprecated one per major (cfn-lint's RDS data agrees;
    # 16.14 and 18.4 are also the PostgreSQLs the local AWS runs). A CloudFormation template names
    # the minor. RDS for PostgreSQL 18: https://docs.aws.amazon.com/AmazonRDS/latest/PostgreSQLReleaseNotes/postgresql-versions.html
    "postgres": {"port": 5432, "versions": ("13", "14", "15", "16", "17", "18"), "client": "postgresql16",
                 "default_version": "16",
                 "default_minors": {"13": "13.23", "14": "14.23", "15": "15.18", "16": "16.14", "17": "17.10",
                                    "18": "18.4"}},
    "mysql": {"port": 3306, "versions": ("8.0", "8.4"), "client": "mariadb105", "default_version": "8.0",
              "default_minors": {"8.0": "8.0.45", "8.4": "8.4.10"}},
    # RDS for MariaDB: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/MariaDB.Concepts.VersionMgmt.html
    # (10.11 is also the MariaDB the local AWS runs: Debian 12's mariadb-server).
    "mariadb": {"port": 3306, "versions": ("10.6", "10.11", "11.4"), "client": "mariadb105", "default_version": "10.11",
                "default_minors": {"10.6": "10.6.24", "10.11": "10.11.15", "11.4": "11.4.9"}},
}
CACHE_ENGINES: dict[str, dict] = {
    "redis": {"port": 6379, "versions": ("6.2", "7.0", "7.1")},
}


def db_major(version: str) -> str:
    """The major version of an RDS engine version, as the lab spells it: "16" for "16.14", "8.0"
    for "8.0.45" (MySQL's majors have two parts); a version no engine offers, as it is."""
    text = str(version)
    majors = sorted({v for facts in DB_ENGINES.values() for v in facts["versions"]}, key=len, reverse=True)
    return next((m for m in majors if text == m or text.startswith(m + ".")), text)


def version_as_lab(shown: str, wanted: str) -> str:
    """The version RDS shows (always MAJOR.MINOR) in the lab's terms: its major when the lab names a
    major alone and RDS runs a minor of it ("16.14" is "16" to a lab saying "16"), else as shown
    (a lab naming "16.15", or another major: the plan then says "16.14 -> 16.15", "16.14 -> 18")."""
    shown, wanted = str(shown), str(wanted)
    return wanted if db_major(wanted) == wanted and db_major(shown) == wanted else shown


def version_key(version: str) -> tuple[int, ...]:
    """A version as numbers, for ordering ("16.14" < "18.4"); a part that is no number counts as 0."""
    return tuple(int(p) if p.isdigit() else 0 for p in str(version).split("."))
# maxmemory-policy values ElastiCache takes (a cache parameter group's; volatile-lru its default).
CACHE_EVICTION_POLICIES = ("volatile-lru", "allkeys-lru", "volatile-lfu", "allkeys-lfu", "volatile-random",
                           "allkeys-random", "volatile-ttl", "noeviction")
HTTPS_PORT = 443
SSH_PORT = 22

DB_CLASS_RE = re.compile(r"^db\.(t3|t4g|m5|m6g|m6i|m7g|r5|r6g|r6i|r7g)\.(micro|small|medium|large|xlarge|[0-9]+xlarge)$")
CACHE_NODE_RE = re.compile(r"^cache\.(t3|t4g|m5|m6g|m7g|r5|r6g|r7g)\.(micro|small|medium|large|xlarge|[0-9]+xlarge)$")
EC2_TYPE_RE = re.compile(r"^[a-z][a-z0-9]*\.(nano|micro|small|medium|large|xlarge|[0-9]+xlarge|metal)$")
DB_STORAGE_TYPES = {"gp2": (20, 65536), "gp3": (20, 65536), "io1": (100, 65536), "io2": (100, 65536)}
WORLD_CIDRS = ("0.0.0.0/0", "::/0")


# The engines RDS offers (`awslab engines`), each fact with the AWS page it comes from. Versions:
# the major versions RDS offers for new instances, as of this catalogue (AWS adds and retires
# them: `aws rds describe-db-engine-versions --engine E --query 'DBEngineVersions[].EngineVersion'`
# is the account's own list). "local": what the local AWS runs behind the endpoint.
SOURCES = {
    "versions": "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Concepts.DBEngine.html",
    "replicas": "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.html",
    "multi_az_cluster": "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/multi-az-db-clusters-concepts.html",
    "blue_green": "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/blue-green-deployments-overview.html",
    "aurora": "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Aurora.Replication.html",
}
RDS_ENGINES: tuple[dict, ...] = (
    {"engine": "postgres", "name": "PostgreSQL", "versions": ("13", "14", "15", "16", "17", "18"),
     "multi_az_instance": True, "multi_az_cluster": True, "max_replicas": 15, "blue_green": True,
     "local": "real server (PostgreSQL 16.14, 18.4 and 18.6 from the engines' wheels): primary, standby, replicas, "
              "backups, PITR, the upgrade from 16 to 18 (pg_upgrade) and from 18.4 to 18.6 (a minor upgrade)"},
    {"engine": "mysql", "name": "MySQL", "versions": ("8.0", "8.4"),
     "multi_az_instance": True, "multi_az_cluster": True, "max_replicas": 15, "blue_green": True,
     "local": "real server where the machine has MariaDB's (MySQL-compatible MariaDB 10.11 stands in for MySQL): "
              "primary with TLS, semi-synchronous Multi-AZ standby, replicas, snapshots, PITR from binary logs; "
              "else control plane only"},
    {"engine": "mariadb", "name": "MariaDB", "versions": ("10.6", "10.11", "11.4"),
     "multi_az_instance": True, "multi_az_cluster": False, "max_replicas": 15, "blue_green": True,
     "local": "real server (10.11) where the machine has MariaDB's: primary with TLS, semi-synchronous Multi-AZ "
              "standby, replicas, snapshots, PITR from binary logs; else control plane only"},
    {"engine": "aurora-postgresql", "name": "Aurora PostgreSQL", "versions": ("13", "14", "15", "16", "17"),
     "multi_az_instance": False, "multi_az_cluster": False, "max_replicas": 15, "blue_green": True,
     "local": "not offered by awslab's labs yet (a cluster: storage in 3 AZs, up to 15 Aurora Replicas)"},
    {"engine": "aurora-mysql", "name": "Aurora MySQL", "versions": ("3",),
     "multi_az_instance": False, "multi_az_cluster": False, "max_replicas": 15, "blue_green": True,
     "local": "not offered by awslab's labs yet (a cluster: storage in 3 AZs, up to 15 Aurora Replicas)"},
    {"engine": "oracle-ee", "name": "Oracle Enterprise Edition", "versions": ("19", "21"),
     "multi_az_instance": True, "multi_az_cluster": False, "max_replicas": 5, "blue_green": False,
     "local": "not offered by awslab's labs yet"},
    {"engine": "oracle-se2", "name": "Oracle Standard Edition Two", "versions": ("19", "21"),
     "multi_az_instance": True, "multi_az_cluster": False, "max_replicas": 5, "blue_green": False,
     "local": "not offered by awslab's labs yet"},
    {"engine": "sqlserver-ee", "name": "SQL Server Enterprise", "versions": ("2016", "2017", "2019", "2022"),
     "multi_az_instance": True, "multi_az_cluster": False, "max_replicas": 5, "blue_green": False,
     "local": "not offered by awslab's labs yet"},
    {"engine": "sqlserver-se", "name": "SQL Server Standard", "versions": ("2016", "2017", "2019", "2022"),
     "multi_az_instance": True, "multi_az_cluster": False, "max_replicas": 0, "blue_green": False,
     "local": "not offered by awslab's labs yet"},
    {"engine": "sqlserver-ex", "name": "SQL Server Express", "versions": ("2016", "2017", "2019", "2022"),
     "multi_az_instance": False, "multi_az_cluster": False, "max_replicas": 0, "blue_green": False,
     "local": "not offered by awslab's labs yet"},
    {"engine": "sqlserver-web", "name": "SQL Server Web", "versions": ("2016", "2017", "2019", "2022"),
     "multi_az_instance": False, "multi_az_cluster": False, "max_replicas": 0, "blue_green": False,
     "local": "not offered by awslab's labs yet"},
    {"engine": "db2-se", "name": "Db2 Standard Edition", "versions": ("11.5",),
     "multi_az_instance": True, "multi_az_cluster": False, "max_replicas": 3, "blue_green": False,
     "local": "not offered by awslab's labs yet"},
    {"engine": "db2-ae", "name": "Db2 Advanced Edition", "versions": ("11.5",),
     "multi_az_instance": True, "multi_az_cluster": False, "max_replicas": 3, "blue_green": False,
     "local": "not offered by awslab's labs yet"},
)

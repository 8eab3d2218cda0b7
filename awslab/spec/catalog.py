"""Facts about what AWS offers that awslab validates against before any call: engines, versions,
ports, classes. One fact in one place: the lab loader, the planner and the cost estimate read here.
"""

from __future__ import annotations

import re

DB_ENGINES: dict[str, dict] = {
    # Major versions RDS offers for new instances (the lab passes the major; RDS picks the minor),
    # and the minor it picks: a current, not deprecated one per major (cfn-lint's RDS data agrees;
    # 16.14 is also the PostgreSQL the local AWS runs). A CloudFormation template names the minor.
    "postgres": {"port": 5432, "versions": ("13", "14", "15", "16", "17"), "client": "postgresql16",
                 "default_minors": {"13": "13.23", "14": "14.23", "15": "15.18", "16": "16.14", "17": "17.10"}},
    "mysql": {"port": 3306, "versions": ("8.0", "8.4"), "client": "mariadb105",
              "default_minors": {"8.0": "8.0.45", "8.4": "8.4.10"}},
}
CACHE_ENGINES: dict[str, dict] = {
    "redis": {"port": 6379, "versions": ("6.2", "7.0", "7.1")},
}
# maxmemory-policy values ElastiCache takes (a cache parameter group's; volatile-lru its default).
CACHE_EVICTION_POLICIES = ("volatile-lru", "allkeys-lru", "volatile-lfu", "allkeys-lfu", "volatile-random",
                           "allkeys-random", "volatile-ttl", "noeviction")
HTTPS_PORT = 443
SSH_PORT = 22

DB_CLASS_RE = re.compile(r"^db\.(t3|t4g|m5|m6g|m6i|m7g|r5|r6g|r6i|r7g)\.(micro|small|medium|large|xlarge|[0-9]+xlarge)$")
CACHE_NODE_RE = re.compile(r"^cache\.(t3|t4g|m5|m6g|m7g|r5|r6g|r7g)\.(micro|small|medium|large|xlarge|[0-9]+xlarge)$")
EC2_TYPE_RE = re.compile(r"^[a-z][a-z0-9]*\.(nano|micro|small|medium|large|xlarge|[0-9]+xlarge|metal)$")
DB_STORAGE_TYPES = {"gp2": (20, 65536), "gp3": (20, 65536), "io1": (100, 65536)}
WORLD_CIDRS = ("0.0.0.0/0", "::/0")

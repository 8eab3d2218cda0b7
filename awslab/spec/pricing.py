"""Estimated on-demand cost: one table, read by the summary and the real-account prompt.

Prices are us-east-1 on-demand list prices (USD) for the lab's sizes, as published by AWS in 2025;
other regions differ by a few percent. An estimate for orientation, not a bill: data transfer,
backup storage beyond the DB's size and taxes are not included.
"""

from __future__ import annotations

from dataclasses import dataclass

from awslab.spec.lab import Lab

HOURS_PER_MONTH = 730

EC2_HOURLY = {"t3.nano": 0.0052, "t3.micro": 0.0104, "t3.small": 0.0208, "t3.medium": 0.0416,
              "t4g.micro": 0.0084, "t4g.small": 0.0168}
PUBLIC_IPV4_HOURLY = 0.005
EBS_GP3_GB_MONTH = 0.08
HOST_ROOT_GIB = 8
# Single-AZ hourly price per engine; Multi-AZ (one standby) costs twice as much.
RDS_HOURLY = {
    "postgres": {"db.t3.micro": 0.018, "db.t3.small": 0.036, "db.t3.medium": 0.072, "db.t4g.micro": 0.016,
                 "db.t4g.small": 0.032, "db.t4g.medium": 0.065, "db.m5.large": 0.178},
    "mysql": {"db.t3.micro": 0.017, "db.t3.small": 0.034, "db.t3.medium": 0.068, "db.t4g.micro": 0.016,
              "db.t4g.small": 0.032, "db.t4g.medium": 0.065, "db.m5.large": 0.171},
    # RDS for MariaDB is priced as RDS for MySQL (https://aws.amazon.com/rds/mariadb/pricing/).
    "mariadb": {"db.t3.micro": 0.017, "db.t3.small": 0.034, "db.t3.medium": 0.068, "db.t4g.micro": 0.016,
                "db.t4g.small": 0.032, "db.t4g.medium": 0.065, "db.m5.large": 0.171},
}
RDS_STORAGE_GB_MONTH = {"gp2": 0.115, "gp3": 0.115, "io1": 0.125, "io2": 0.125}
RDS_SNAPSHOT_GB_MONTH = 0.095  # an upper bound: snapshots after the first are incremental
ELASTICACHE_BACKUP_GB_MONTH = 0.085
ELASTICACHE_HOURLY = {"cache.t3.micro": 0.017, "cache.t3.small": 0.034, "cache.t3.medium": 0.068,
                      "cache.t4g.micro": 0.016, "cache.t4g.small": 0.032}
SECRET_MONTH = 0.40


@dataclass(frozen=True)
class Line:
    item: str
    hourly: float | None   # None: not in the table


def estimate(lab: Lab) -> list[Line]:
    h, d, c = lab.host, lab.database, lab.cache
    lines = [
        Line(f"EC2 {h.instance_type} host", EC2_HOURLY.get(h.instance_type)),
        Line("public IPv4 address", PUBLIC_IPV4_HOURLY),
        Line(f"EBS gp3 {HOST_ROOT_GIB} GiB (host)", EBS_GP3_GB_MONTH * HOST_ROOT_GIB / HOURS_PER_MONTH),
    ]
    cluster = d.deployment == "cluster"   # a Multi-AZ DB cluster: three instances of its class, no replicas
    lines += database_lines(d)
    db_rate = RDS_HOURLY.get(d.engine, {}).get(d.instance_class)
    storage = RDS_STORAGE_GB_MONTH[d.storage_type] * d.allocated_storage_gib / HOURS_PER_MONTH
    for i in range(0 if cluster else d.read_replicas):
        lines.append(Line(f"RDS read replica {i + 1} ({d.instance_class})", db_rate))
        lines.append(Line(f"RDS replica {i + 1} storage", storage))
    nodes = 1 + c.replicas
    node_rate = ELASTICACHE_HOURLY.get(c.node_type)
    lines.append(Line(f"ElastiCache {nodes} x {c.node_type}", node_rate * nodes if node_rate is not None else None))
    lines.append(Line("Secrets Manager: 2 secrets", 2 * SECRET_MONTH / HOURS_PER_MONTH))
    return lines


def database_lines(d) -> list[Line]:
    """The lab's database (``lab.database``) without its replicas: its instances and their storage
    (also what `drill --compare`'s temporary database of the other deployment costs)."""
    cluster = d.deployment == "cluster"
    klass = d.cluster_instance_class if cluster else d.instance_class
    db_rate = RDS_HOURLY.get(d.engine, {}).get(klass)
    az = 3 if cluster else 2 if d.multi_az else 1
    storage = RDS_STORAGE_GB_MONTH[d.storage_type] * d.allocated_storage_gib / HOURS_PER_MONTH
    return [Line(f"RDS {d.engine} {klass} " + ("Multi-AZ DB cluster (3 instances)" if cluster else
                                                "Multi-AZ" if d.multi_az else "Single-AZ"),
                 db_rate * az if db_rate is not None else None),
            Line(f"RDS {d.storage_type} {d.allocated_storage_gib} GiB", storage * az)]


def total_hourly(lines: list[Line]) -> tuple[float, bool]:
    """The sum, and whether every line was priced."""
    return sum(l.hourly or 0.0 for l in lines), all(l.hourly is not None for l in lines)


def format_money(amount: float) -> str:
    return f"${amount:,.3f}" if amount < 1 else f"${amount:,.2f}"


def hourly_of_found(found: dict) -> float:
    """What a stack costs per hour now, priced from what exists (``Found`` values by key), not from
    billing data: never a day late. Unknown sizes count 0."""
    total = 0.0
    for f in found.values():
        if f.state in ("deleting", "deleted", "terminated", "shutting-down", "stopped"):
            continue
        if f.kind == "instance":
            total += (EC2_HOURLY.get((f.get("raw") or {}).get("InstanceType", ""), 0.0)
                      + EBS_GP3_GB_MONTH * HOST_ROOT_GIB / HOURS_PER_MONTH
                      + (PUBLIC_IPV4_HOURLY if f.get("public_ip") else 0.0))
        elif f.kind in ("db-instance", "db-replica"):
            az = 2 if f.get("multi_az") else 1
            raw = f.get("raw") or {}
            rate = RDS_HOURLY.get(f.get("engine") or "", {}).get(f.get("class") or "", 0.0)
            storage = RDS_STORAGE_GB_MONTH.get(raw.get("StorageType", "gp3"), 0.115) * (f.get("storage_gib") or 0)
            total += az * (rate + storage / HOURS_PER_MONTH)
        elif f.kind == "db-cluster":   # three instances of its class, each with the cluster's storage
            raw = f.get("raw") or {}
            rate = RDS_HOURLY.get(f.get("engine") or "", {}).get(f.get("class") or "", 0.0)
            storage = RDS_STORAGE_GB_MONTH.get(raw.get("StorageType", "io1"), 0.125) * (f.get("storage_gib") or 0)
            total += 3 * (rate + storage / HOURS_PER_MONTH) + SECRET_MONTH / HOURS_PER_MONTH
        elif f.kind == "replication-group":
            nodes = len(f.get("members") or []) or 1
            total += nodes * ELASTICACHE_HOURLY.get(f.get("node_type") or "", 0.0)
        elif f.kind == "secret":
            total += SECRET_MONTH / HOURS_PER_MONTH
    total += sum(SECRET_MONTH / HOURS_PER_MONTH for f in found.values()
                 if f.kind == "db-instance" and f.get("secret_arn"))   # the RDS-managed master secret
    return total


def snapshot_monthly(kind: str, size_gib: float | None) -> float:
    """What keeping one snapshot costs per month (USD), by its service."""
    rate = RDS_SNAPSHOT_GB_MONTH if kind.startswith("db") else ELASTICACHE_BACKUP_GB_MONTH
    return (size_gib or 0) * rate

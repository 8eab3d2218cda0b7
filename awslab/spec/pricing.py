"""Estimated on-demand cost, per region: the price tables and the lines a cost is made of.

The figures live in ``prices.json`` beside this module: on-demand list prices (USD) of the lab's
sizes per AWS region, each block of figures with the source it was read from and that source's
date. It is read on the first price asked for, never at import: most commands price nothing. A
region or size no source gives is not priced: its ``Line.hourly`` is None, the totals say so, and
no figure is borrowed from another region. An estimate for orientation, not a bill: data
transfer, backup storage beyond the DB's size and taxes are not included.

What a thing costs is said by its kind's handler (the ``cost`` capability in spec/model.py:
``estimate`` for what a lab will make, ``priced`` for what exists), each through the functions
below; ``estimate`` and ``found_lines`` add up the handlers of the registry they are handed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Iterable

HOURS_PER_MONTH = 730
HOST_ROOT_GIB = 8
DEFAULT_REGION = "us-east-1"
PRICES = Path(__file__).with_name("prices.json")
ANY_REGION = "*"       # a figure its source gives for every region
# States in which AWS bills nothing for the resource's hours.
NOT_BILLED = frozenset({"deleting", "deleted", "terminated", "shutting-down", "stopped"})


@dataclass(frozen=True)
class Line:
    item: str
    hourly: float | None   # None: not priced (no source gives this size in this region)


@cache
def _tables() -> dict[str, dict[str, Any]]:
    """table -> region -> figures, the blocks of each table merged (a figure given twice is a
    mistake in the file, not a choice: refused)."""
    import json

    doc = json.loads(PRICES.read_text(encoding="utf-8"))
    out: dict[str, dict[str, Any]] = {}
    for name, blocks in doc["tables"].items():
        merged = out.setdefault(name, {})
        for block in blocks:
            if block["source"] not in doc["sources"]:
                raise ValueError(f"{PRICES.name}: {name}: unknown source {block['source']!r}")
            for region, figures in block["prices"].items():
                _merge(merged, region, figures, f"{name} {region}")
    return out


def _merge(into: dict, key: str, value: Any, where: str) -> None:
    if isinstance(value, dict):
        into.setdefault(key, {})
        for k, v in value.items():
            _merge(into[key], k, v, f"{where} {k}")
    elif key in into:
        raise ValueError(f"{PRICES.name}: {where} is given twice")
    else:
        into[key] = value


def price(table: str, region: str, *keys: str) -> float | None:
    """The figure of ``table`` for ``region`` (then ``keys``, e.g. engine and class), or None when
    no source gives it."""
    regions = _tables()[table]
    for where in (region, ANY_REGION):
        value: Any = regions.get(where)
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        if value is not None:
            return float(value)
    return None


def _times(rate: float | None, factor: float) -> float | None:
    return None if rate is None else rate * factor


# --- what one billed thing costs, per region (the handlers' ``cost`` methods call these) --------

def host_lines(instance_type: str, region: str, *, public_ip: bool = True) -> list[Line]:
    """An EC2 host: its hours, its public IPv4 address, its gp3 root volume."""
    lines = [Line(f"EC2 {instance_type} host", price("ec2_hourly", region, instance_type))]
    if public_ip:
        lines.append(Line("public IPv4 address", price("public_ipv4_hourly", region)))
    lines.append(Line(f"EBS gp3 {HOST_ROOT_GIB} GiB (host)",
                      _times(price("ebs_gp3_gb_month", region), HOST_ROOT_GIB / HOURS_PER_MONTH)))
    return lines


def db_lines(label: str, engine: str, klass: str, storage_type: str, storage_gib: float, copies: int,
             region: str, *, storage_label: str | None = None) -> list[Line]:
    """RDS instance hours and storage, ``copies`` times (a Multi-AZ standby and a DB cluster's
    members each bill the hours and a copy of the storage)."""
    storage = _times(price("rds_storage_gb_month", region, storage_type), (storage_gib or 0) / HOURS_PER_MONTH)
    return [Line(label, _times(price("rds_hourly", region, engine, klass), copies)),
            Line(storage_label or f"RDS {storage_type} {storage_gib:g} GiB", _times(storage, copies))]


def database_lines(d, region: str = DEFAULT_REGION) -> list[Line]:
    """The lab's database (``lab.database``) without its replicas: its instances and their storage
    (also what `drill --compare`'s temporary database of the other deployment costs)."""
    cluster = d.deployment == "cluster"   # a Multi-AZ DB cluster: three instances of its class, no replicas
    klass = d.cluster_instance_class if cluster else d.instance_class
    copies = 3 if cluster else 2 if d.multi_az else 1
    shape = "Multi-AZ DB cluster (3 instances)" if cluster else "Multi-AZ" if d.multi_az else "Single-AZ"
    return db_lines(f"RDS {d.engine} {klass} {shape}", d.engine, klass, d.storage_type, d.allocated_storage_gib,
                    copies, region)


def replica_lines(d, n: int, region: str = DEFAULT_REGION) -> list[Line]:
    """Read replica ``n`` of the lab's database: its own instance and storage."""
    return db_lines(f"RDS read replica {n} ({d.instance_class})", d.engine, d.instance_class, d.storage_type,
                    d.allocated_storage_gib, 1, region, storage_label=f"RDS replica {n} storage")


def cache_lines(node_type: str, nodes: int, region: str) -> list[Line]:
    return [Line(f"ElastiCache {nodes} x {node_type}", _times(price("elasticache_hourly", region, node_type), nodes))]


def secret_line(what: str, region: str) -> Line:
    return Line(f"Secrets Manager: {what}", _times(price("secret_month", region), 1 / HOURS_PER_MONTH))


def snapshot_monthly(service: str, size_gib: float | None, region: str = DEFAULT_REGION) -> float | None:
    """What keeping one snapshot costs per month (USD), by its service ("db..." or "cache...") and
    region; None: not priced."""
    table = "rds_snapshot_gb_month" if service.startswith("db") else "elasticache_backup_gb_month"
    return _times(price(table, region), size_gib or 0)


def snapshot_line(item: str, service: str, size_gib: float | None, region: str) -> Line:
    """A snapshot kept: its storage as an hourly figure (the month's price over its hours), so a
    snapshot adds up with everything else; ``monthly`` turns lines back into a month."""
    return Line(f"{item} ({region})", _times(snapshot_monthly(service, size_gib, region), 1 / HOURS_PER_MONTH))


# --- adding up ---------------------------------------------------------------------------------

def estimate(lab, region: str = DEFAULT_REGION, kinds=None, stack: str = "lab") -> list[Line]:
    """What the lab costs per hour once up in ``region``: each resource it wants priced by its
    kind's handler in ``kinds`` (the ``cost`` capability). Without a registry (a caller that has
    none, a test of the lab alone), the same lines from the lab's sections."""
    if kinds is None:
        h, d, c = lab.host, lab.database, lab.cache
        lines = host_lines(h.instance_type, region) + database_lines(d, region)
        for i in range(0 if d.deployment == "cluster" else d.read_replicas):
            lines += replica_lines(d, i + 1, region)
        return lines + cache_lines(c.node_type, 1 + c.replicas, region) + [
            secret_line("DB master password (managed by RDS)", region), secret_line("cache AUTH token", region)]
    from awslab.spec.topology import desired

    return [line for want in desired(lab, stack, region) if want.kind in kinds and kinds.can(want.kind, "cost")
            for line in kinds[want.kind].estimate(want, region)]


def found_lines(found: dict, region: str, kinds) -> dict[str, list[Line]]:
    """What each resource found costs per hour now (key -> its lines), priced by its kind's handler
    from what exists, not from billing data: never a day late. A resource AWS bills no hours for
    (stopped, being deleted) costs nothing here."""
    out: dict[str, list[Line]] = {}
    for key, f in found.items():
        if f.state in NOT_BILLED or f.kind not in kinds or not kinds.can(f.kind, "cost"):
            continue
        out[key] = kinds[f.kind].priced(f, region)
    return out


def total_hourly(lines: Iterable[Line]) -> tuple[float, bool]:
    """The sum, and whether every line was priced."""
    lines = list(lines)
    return sum(l.hourly or 0.0 for l in lines), all(l.hourly is not None for l in lines)


def monthly(lines: Iterable[Line]) -> tuple[float, bool]:
    """What ``lines`` cost per month (730 hours), and whether every line was priced."""
    hourly, complete = total_hourly(lines)
    return hourly * HOURS_PER_MONTH, complete


def not_priced(lines: Iterable[Line]) -> list[str]:
    """What of ``lines`` no source prices, each named once."""
    return list(dict.fromkeys(l.item for l in lines if l.hourly is None))


def format_money(amount: float) -> str:
    return f"${amount:,.3f}" if amount < 1 else f"${amount:,.2f}"


def say(lines: list[Line], region: str, per: str = "hour", *, about: bool = False) -> str:
    """'$0.115/hour' (or /month; 'about $0.115/hour' with ``about``), or what of it is not priced
    in ``region`` ("" when the lines span regions: each item then names its own): '$0.082/hour (not
    priced in sa-east-1: EC2 t3.micro host, ...)'; 'not priced in xx-1 (...)' when nothing is."""
    amount, complete = monthly(lines) if per == "month" else total_hourly(lines)
    money = f"{'about ' if about else ''}{format_money(amount)}/{per}"
    if complete:
        return money
    where = f" in {region}" if region else ""
    missing = ", ".join(not_priced(lines))
    if all(l.hourly is None for l in lines):
        return f"not priced{where}" + (f" ({missing})" if len(lines) > 1 else "")
    return f"{money} (not priced{where}: {missing})"


# us-east-1's tables under the names this module had before prices were per region (read lazily,
# like every figure): for a reader that wants one table, not a region's lines.
_US_EAST_1 = {"EC2_HOURLY": "ec2_hourly", "PUBLIC_IPV4_HOURLY": "public_ipv4_hourly", "EBS_GP3_GB_MONTH": "ebs_gp3_gb_month",
              "RDS_HOURLY": "rds_hourly", "RDS_STORAGE_GB_MONTH": "rds_storage_gb_month",
              "RDS_SNAPSHOT_GB_MONTH": "rds_snapshot_gb_month", "ELASTICACHE_HOURLY": "elasticache_hourly",
              "ELASTICACHE_BACKUP_GB_MONTH": "elasticache_backup_gb_month", "SECRET_MONTH": "secret_month"}


def __getattr__(name: str) -> Any:
    if name not in _US_EAST_1:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    regions = _tables()[_US_EAST_1[name]]
    value = regions.get(DEFAULT_REGION, regions.get(ANY_REGION))
    return dict(value) if isinstance(value, dict) else value

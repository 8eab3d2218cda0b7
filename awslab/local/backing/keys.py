"""Which engine is whose: the keys of engines and engine snapshots, per account and region, and
the AZ pair of a follower and its primary (the latency of the link between them)."""

from __future__ import annotations


HOME_ACCOUNT = "123456789012"   # moto's default account: the home's own keys act in it


def place(account: str, region: str) -> str:
    """Where an engine lives: the region, and the account when it is not the home's own (a
    StackSet's target accounts, roles assumed into them), so two accounts' ``lab-db`` never share
    an engine."""
    return region if account == HOME_ACCOUNT else f"{region}@{account}"


def az_pair(follower: str, primary: str) -> str:
    """``net.cross-az`` or ``net.same-az`` for a follower and its primary: a Multi-AZ standby is in
    another AZ by definition; a read replica where RDS put it."""
    from awslab.local.engines import Engines

    if Engines.owner_of_standby(follower):
        return "net.cross-az"
    azs = []
    for key in (follower, primary):
        service, place, ident = key.split(".", 2)
        region, _, account = place.partition("@")
        try:
            from moto.rds.models import rds_backends
            azs.append(rds_backends[account or HOME_ACCOUNT][region].databases[ident].availability_zone)
        except Exception:  # noqa: BLE001 - not an RDS instance moto knows (any more): across AZs
            return "net.cross-az"
    return "net.same-az" if azs[0] == azs[1] else "net.cross-az"


def db_key(account: str, region: str, ident: str) -> str:
    """The engine key of an RDS DB instance (whatever its engine)."""
    return f"rds.{place(account, region)}.{ident}"


def snap_key(service: str, account: str, region: str, ident: str) -> str:
    return f"{service}.{place(account, region)}.{ident.split(':')[-1]}"

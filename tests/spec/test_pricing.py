"""Prices per region: the shipped table, the lines a cost is made of, and the `cost` capability of
the kinds that bill. Pure: no AWS, no network (prices.json ships in the package)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from awslab.aws.kinds import KINDS
from awslab.spec import pricing
from awslab.spec.lab import load_lab
from awslab.spec.model import Desired, Found

H = pricing.HOURS_PER_MONTH
# week6 in us-east-1 as awslab priced it before prices were per region (host, IPv4, EBS 8 GiB,
# Multi-AZ db.t3.micro and 2 x 20 GiB gp3, a replica and its storage, 2 cache nodes, 2 secrets).
WEEK6_US_EAST_1 = (0.0104 + 0.005 + 0.08 * 8 / H + 2 * (0.018 + 0.115 * 20 / H) + (0.018 + 0.115 * 20 / H)
                   + 2 * 0.017 + 2 * 0.40 / H)


def _doc() -> dict:
    return json.loads(pricing.PRICES.read_text())


def test_every_block_names_a_source_with_its_date_and_every_figure_is_a_price():
    doc = _doc()
    for name, src in doc["sources"].items():
        assert src.get("date") and src.get("what"), name
        assert src.get("page") or (src.get("repository") and src.get("commit")), f"{name}: neither page nor commit"
    for table, blocks in doc["tables"].items():
        for block in blocks:
            assert block["source"] in doc["sources"], table

            def walk(v):
                if isinstance(v, dict):
                    for x in v.values():
                        walk(x)
                else:
                    assert isinstance(v, (int, float)) and 0 < v < 10, (table, v)
            walk(block["prices"])


def test_a_figure_given_twice_is_refused(tmp_path, monkeypatch):
    doc = _doc()
    doc["tables"]["secret_month"].append({"source": "awslab-2025", "prices": {"us-east-1": 0.5}})
    bad = tmp_path / "prices.json"
    bad.write_text(json.dumps(doc))
    monkeypatch.setattr(pricing, "PRICES", bad)
    pricing._tables.cache_clear()
    try:
        with pytest.raises(ValueError, match="secret_month us-east-1 is given twice"):
            pricing.price("secret_month", "us-east-1")
    finally:
        monkeypatch.undo()
        pricing._tables.cache_clear()


def test_us_east_1__every_figure_as_before():
    assert pricing.total_hourly(pricing.estimate(load_lab("week6"))) == (pytest.approx(WEEK6_US_EAST_1), True)
    assert pricing.say(pricing.estimate(load_lab("week6")), "us-east-1") == "$0.115/hour"
    assert pricing.RDS_HOURLY["mysql"]["db.m5.large"] == 0.171 and pricing.EC2_HOURLY["t4g.small"] == 0.0168
    assert pricing.ELASTICACHE_HOURLY["cache.t4g.micro"] == 0.016 and pricing.RDS_STORAGE_GB_MONTH["io1"] == 0.125


def test_sa_east_1__the_host_the_database_and_the_cache_cost_more_than_in_us_east_1():
    """vantage-sh/ec2instances.info (2021-08-03): db.t3.micro PostgreSQL Single-AZ $0.038/hour in
    São Paulo, $0.018 in N. Virginia; vantage's cache data (2025-04-24): cache.t3.micro $0.032;
    its EC2 data (2024-04-04): t3.micro $0.0168."""
    assert pricing.price("rds_hourly", "sa-east-1", "postgres", "db.t3.micro") == 0.038
    assert pricing.price("rds_hourly", "us-east-1", "postgres", "db.t3.micro") == 0.018
    assert pricing.price("elasticache_hourly", "sa-east-1", "cache.t3.micro") == 0.032
    lines = {l.item: l.hourly for l in pricing.estimate(load_lab("week6"), "sa-east-1")}
    assert lines["RDS postgres db.t3.micro Multi-AZ"] == pytest.approx(2 * 0.038)
    assert lines["RDS read replica 1 (db.t3.micro)"] == 0.038
    assert lines["ElastiCache 2 x cache.t3.micro"] == pytest.approx(0.064)
    assert lines["EC2 t3.micro host"] == 0.0168
    assert lines["public IPv4 address"] == 0.005   # the one figure AWS gives for every region


def test_a_size_without_a_source_in_the_region_is_not_priced__never_us_east_1s_figure():
    lines = pricing.estimate(load_lab("week6"), "ap-southeast-2")
    disk = next(l for l in lines if l.item == "EBS gp3 8 GiB (host)")
    assert disk.hourly is None   # no source gives EBS in Sydney: not us-east-1's $0.08/GB-month
    said = pricing.say(lines, "ap-southeast-2")
    assert said.startswith("$") and "(not priced in ap-southeast-2: EBS gp3 8 GiB (host), RDS gp3 20 GiB" in said
    assert pricing.total_hourly(lines)[1] is False
    nowhere = pricing.estimate(load_lab("week6"), "xx-south-9")
    assert [l.item for l in nowhere if l.hourly is not None] == ["public IPv4 address"]
    # a class no source gives, anywhere: a Multi-AZ DB cluster's db.m6gd.large
    cluster = pricing.estimate(load_lab("week6", overrides=["database.deployment=cluster"]), "us-east-1")
    assert next(l for l in cluster if "Multi-AZ DB cluster" in l.item).hourly is None


@pytest.mark.parametrize("overrides", [[], ["database.deployment=cluster"],
                                       ["database.engine=mysql", "database.engine_version=8.0",
                                        "database.read_replicas=2", "cache.replicas=2", "host.instance_type=t4g.small",
                                        "database.instance_class=db.t4g.micro", "cache.node_type=cache.t4g.micro"]])
@pytest.mark.parametrize("region", ["us-east-1", "sa-east-1", "eu-west-1", "ap-northeast-1", "xx-south-9"])
def test_the_kinds_price_the_lab_as_the_lab_alone_does(overrides, region):
    lab = load_lab("week6", overrides=overrides)
    by_kinds, alone = pricing.estimate(lab, region, KINDS), pricing.estimate(lab, region)
    assert pricing.total_hourly(by_kinds)[0] == pytest.approx(pricing.total_hourly(alone)[0])
    assert sorted(pricing.not_priced(by_kinds)) == sorted(pricing.not_priced(alone))


def test_the_kinds_that_bill_declare_cost_and_the_others_do_not():
    billing = {"instance", "db-instance", "db-replica", "db-restore", "db-cluster", "db-cluster-restore",
               "replication-group", "cache-restore", "secret", "db-snapshot", "db-snapshot-copy", "db-cluster-snapshot",
               "cache-snapshot"}
    assert {k for k in KINDS if KINDS.can(k, "cost")} == billing


def _found(key, kind, state="available", **attrs):
    return Found(key, kind, key, state, datetime.now(timezone.utc), attrs)


FOUND = {
    "host.instance": _found("host.instance", "instance", "running", raw={"InstanceType": "t3.micro"}, public_ip="1.2.3.4"),
    "db.primary": _found("db.primary", "db-instance", engine="postgres", **{"class": "db.t3.micro"}, multi_az=True,
                         storage_gib=20, raw={"StorageType": "gp3"}, secret_arn="arn:secret"),
    "db.replica.1": _found("db.replica.1", "db-replica", engine="postgres", **{"class": "db.t3.micro"}, multi_az=False,
                           storage_gib=20, raw={"StorageType": "gp3"}),
    "cache.group": _found("cache.group", "replication-group", node_type="cache.t3.micro", members=["a", "b"]),
    "cache.auth-token": _found("cache.auth-token", "secret"),
    "network.vpc": _found("network.vpc", "vpc"),
}


def test_what_exists__each_resource_priced_by_its_kind_in_the_stacks_region():
    lines = pricing.found_lines(FOUND, "us-east-1", KINDS)
    assert set(lines) == set(FOUND) - {"network.vpc"}   # a VPC costs nothing: its kind declares no cost
    assert pricing.total_hourly([l for ls in lines.values() for l in ls]) == (pytest.approx(WEEK6_US_EAST_1), True)
    sa = pricing.found_lines(FOUND, "sa-east-1", KINDS)
    assert pricing.total_hourly(sa["db.replica.1"])[0] == 0.038 and pricing.not_priced(sa["host.instance"]) == [
        "EBS gp3 8 GiB (host)"]
    stopped = {"host.instance": _found("host.instance", "instance", "stopped", raw={"InstanceType": "t3.micro"})}
    assert pricing.found_lines(stopped, "us-east-1", KINDS) == {}


def test_a_snapshot_is_priced_in_its_own_region():
    home = _found("snapshot.db.us-east-1.s", "db-snapshot", storage_gib=20, size_gib=20, region="us-east-1")
    copy = _found("snapshot.db.sa-east-1.s", "db-snapshot", size_gib=20, region="sa-east-1")
    assert pricing.monthly(KINDS["db-snapshot"].priced(home, "sa-east-1")) == (pytest.approx(1.9), True)
    (line,) = KINDS["db-snapshot"].priced(copy, "us-east-1")
    assert line.hourly is None and line.item.endswith("(sa-east-1)")   # no source gives São Paulo's snapshot price
    assert KINDS["db-snapshot"].estimate(Desired("snapshot.db.us-east-1.s", "db-snapshot", "s"), "us-east-1") == []


def test_the_table_is_read_on_the_first_price_asked_not_when_a_command_loads():
    code = ("import awslab.cli, awslab.commands.lifecycle, awslab.commands.stacks, awslab.spec.pricing as p;"
            "print(p._tables.cache_info().currsize); p.price('secret_month', 'us-east-1');"
            "print(p._tables.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "1"]

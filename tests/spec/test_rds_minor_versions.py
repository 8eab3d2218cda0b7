"""Full engine versions (MAJOR.MINOR) in the lab: the versions RDS offers and its upgrade paths as
data checked against their sources' rows, the lab accepting an offered minor and refusing others in
one line, and the plan pricing a minor upgrade or refusing what RDS refuses. Pure."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from awslab.aws.database import DB_SETTINGS
from awslab.errors import UsageError
from awslab.spec import rds_versions
from awslab.spec.catalog import DB_ENGINES, version_as_lab
from awslab.spec.lab import load_lab
from awslab.spec.model import changes_in_place
from awslab.spec.upgrades import engine_version_change


def _running(version: str, **extra) -> dict:
    return {"Engine": "postgres", "EngineVersion": version, "MultiAZ": True, "DBInstanceClass": "db.t3.micro",
            "AllocatedStorage": 20, "StorageType": "gp3", "BackupRetentionPeriod": 7, "DeletionProtection": False, **extra}


def _changes(running: str, *overrides: str):
    lab = load_lab("week6", overrides=list(overrides))
    return changes_in_place(DB_SETTINGS, lab.database, _running(running))


# --- the data against its sources ----------------------------------------------------------------

def test_offered__rows_as_describe_db_engine_versions_lists_them():
    # cfn-lint 1.58.0's engine_version.json less engine_version_deprecated.json, verbatim.
    assert rds_versions.OFFERED["postgres"]["16"] == ("16.9", "16.10", "16.11", "16.12", "16.13", "16.14", "16.15")
    assert rds_versions.OFFERED["postgres"]["18"] == ("18.1", "18.2", "18.3", "18.4", "18.6")   # no 18.5
    assert rds_versions.OFFERED["mysql"]["8.0"] == ("8.0.42", "8.0.43", "8.0.44", "8.0.45", "8.0.46")
    assert not rds_versions.is_offered("postgres", "16.8")     # deprecated: in the second file
    assert not rds_versions.is_offered("postgres", "13.23-rds.20260514")   # Extended Support builds left out


def test_offered__every_major_a_lab_runs_and_its_default_minor_are_offered():
    for engine, facts in DB_ENGINES.items():
        assert set(rds_versions.OFFERED[engine]) == set(facts["versions"]), engine
        for major, minor in facts["default_minors"].items():
            assert rds_versions.is_offered(engine, minor), (engine, minor)


def _cfn_lint_files():
    cfnlint = pytest.importorskip("cfnlint")
    from importlib.metadata import version

    if version("cfn-lint") != "1.58.0":
        pytest.skip(f"cfn-lint {version('cfn-lint')} is not the release the table was taken from")
    return Path(cfnlint.__file__).parent / "data/schemas/extensions/aws_rds_dbinstance"


def test_offered__equals_its_source_where_that_release_is_installed():
    base = _cfn_lint_files()

    def enums(name: str, where: str) -> dict[str, set[str]]:
        out = {}
        for rule in json.loads((base / name).read_text())["allOf"]:
            engine = rule["if"]["properties"].get("Engine", {}).get("const")
            if engine:
                out[engine] = set((rule[where]["properties"]["EngineVersion"]["enum"]) if where == "then"
                                  else rule["if"]["properties"]["EngineVersion"]["enum"])
        return out

    listed, deprecated = enums("engine_version.json", "then"), enums("engine_version_deprecated.json", "if")
    for engine, majors in rds_versions.OFFERED.items():
        for major, minors in majors.items():
            source = {v for v in listed[engine] - deprecated.get(engine, set())
                      if v.startswith(major + ".") and v.count(".") == major.count(".") + 1 and "-" not in v}
            assert set(minors) == source, (engine, major)


def test_upgrade_table__rows_as_aws_publishes_them():
    rows = rds_versions.UPGRADE_TARGETS["postgres"]
    assert rows["16.9"] == ("17.5",)
    assert rows["16.7"] == ("17.5", "17.4", "17.3", "16.8")
    assert rows["17.1"] == ("17.5", "17.4", "17.3", "17.2")
    assert rds_versions.TABLE_HORIZON["postgres"] == {"17": "17.5", "16": "16.8"}


# --- the rules -----------------------------------------------------------------------------------

def test_path__what_the_table_refuses_allows_and_is_silent_about():
    assert rds_versions.path_refusal("postgres", "16.9", "17.4") == \
        "RDS does not upgrade postgres 16.9 to 17.4 directly; its upgrade targets from 16.9: 17.5"
    assert rds_versions.path_refusal("postgres", "16.6", "17.1") == \
        "RDS does not upgrade postgres 16.6 to 17.1 directly; first upgrade to 16.8"
    assert rds_versions.path_refusal("postgres", "16.6", "17.5") is None    # listed
    assert rds_versions.path_refusal("postgres", "16.1", "18.4") is None    # newer than the table: silent
    assert rds_versions.path_refusal("postgres", "16.14", "18.4") is None   # no row for 16.14: silent


def test_version_as_lab__a_major_alone_reads_the_minor_as_its_major():
    assert version_as_lab("16.14", "16") == "16"
    assert version_as_lab("16.14", "16.15") == "16.14"
    assert version_as_lab("16.14", "18") == "16.14"
    assert version_as_lab("8.0.45", "8.0") == "8.0"


# --- the lab -------------------------------------------------------------------------------------

def test_lab__an_offered_minor_is_accepted_as_written():
    assert load_lab("week6", overrides=["database.engine_version=16.14"]).database.engine_version == "16.14"
    mysql = load_lab("week6", overrides=["database.engine=mysql", "database.engine_version=8.4.10"])
    assert mysql.database.engine_version == "8.4.10"


@pytest.mark.parametrize("version", ["16.99", "16.8", "16.14.1"])
def test_lab__a_minor_rds_does_not_offer__refused_in_one_line_naming_what_it_offers(version):
    with pytest.raises(UsageError) as refused:
        load_lab("week6", overrides=[f"database.engine_version={version}"])
    said = f"{refused.value} {refused.value.hint}"
    assert f"RDS does not offer postgres {version}" in said and "16.9, 16.10" in said and "\n" not in said


# --- the plan ------------------------------------------------------------------------------------

def test_plan__same_version_or_its_major__no_change():
    assert _changes("16.14", "database.engine_version=16.14") == ()
    assert _changes("16.14") == ()


def test_plan__newer_minor__a_minor_upgrade_with_its_cost():
    (change,) = _changes("16.14", "database.engine_version=16.15")
    assert (change.old, change.new) == ("16.14", "16.15")
    assert change.cost == ("minor upgrade: an engine restart of both Multi-AZ servers at once (no failover hides it); "
                           "the read replica first, as RDS requires")


def test_plan__older_minor__refused_as_rds_refuses_a_downgrade():
    with pytest.raises(UsageError) as refused:
        _changes("16.14", "database.engine_version=16.9")
    assert "RDS cannot downgrade postgres 16.14 to 16.9" in str(refused.value) and "\n" not in str(refused.value)


def test_plan__a_path_rds_does_not_take__refused_naming_the_step():
    db = replace(load_lab("week6").database, multi_az=False, read_replicas=0)
    with pytest.raises(UsageError) as refused:
        engine_version_change("16.6", "17.1", db)
    assert str(refused.value) == ("database.engine_version: RDS does not upgrade postgres 16.6 to 17.1 directly; "
                                  "first upgrade to 16.8; nothing was changed")
    assert refused.value.hint == "--set database.engine_version=16.8 first"
    # a major alone is the minor RDS picks for it: a path the table is silent about
    assert engine_version_change("16.6", "17", db).startswith("major upgrade")

"""An engine version changed on an existing stack: an in-place upgrade with its cost, or refused. Pure."""

from __future__ import annotations

from dataclasses import replace

import pytest

from awslab.aws.database import DB_SETTINGS
from awslab.errors import UsageError
from awslab.spec.catalog import db_major, version_key
from awslab.spec.lab import load_lab
from awslab.spec.model import changes_in_place
from awslab.spec.upgrades import engine_version_change

RUNNING_16 = {"Engine": "postgres", "EngineVersion": "16.14", "MultiAZ": True, "DBInstanceClass": "db.t3.micro",
              "AllocatedStorage": 20, "StorageType": "gp3", "BackupRetentionPeriod": 7, "DeletionProtection": False}


def _changes(*overrides: str):
    lab = load_lab("week6", overrides=list(overrides))
    return changes_in_place(DB_SETTINGS, lab.database, RUNNING_16)


def test_plan__new_major__an_in_place_upgrade_with_what_it_costs():
    (change,) = _changes("database.engine_version=18")
    assert (change.setting, change.old, change.new) == ("database.engine_version", "16.14", "18")
    assert "AllowMajorVersionUpgrade" in change.cost and "both Multi-AZ servers at once" in change.cost
    assert "read replica upgraded with it" in change.cost and "snapshot first" in change.cost
    assert str(change).startswith("database.engine_version: 16.14 -> 18: major upgrade")


def test_plan__same_major__no_change_whatever_minor_runs():
    assert _changes() == ()


def test_plan__downgrade__refused_in_one_line():
    with pytest.raises(UsageError) as refused:
        _changes("database.engine_version=15")
    assert "RDS cannot downgrade postgres 16.14 to 15" in str(refused.value) and "\n" not in str(refused.value)


def test_cost__single_az_and_minor():
    db = replace(load_lab("week6").database, multi_az=False, read_replicas=0)
    assert engine_version_change("16", "18", db).endswith("upgrades the Single-AZ server")
    assert engine_version_change("16.10", "16.14", db) == "minor upgrade: an engine restart of the Single-AZ server"


def test_versions__majors_and_order():
    assert (db_major("16.14"), db_major("18"), db_major("8.0.45")) == ("16", "18", "8.0")
    assert version_key("16.14") < version_key("18.4") and version_key("16.9") < version_key("16.14")

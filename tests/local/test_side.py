"""The local AWS's notes on moto's objects (local/side.py): one dataclass per kind of object, saved
with the state; a state saved before them (one ``_awslab_<field>`` attribute per field) loads into
them; a copy of an object (moto copies a replica from its source) never shares a change."""

from __future__ import annotations

import copy
import importlib
from dataclasses import fields

import pytest

from awslab.local import latency, persistence
from awslab.local.side import ATTR, KINDS, DbInstanceSide, Side, kind_of, note, side


def _new(path: str):
    module, name = path.split(":")
    cls = getattr(importlib.import_module(module), name)
    return cls.__new__(cls)   # moto's __init__ needs a backend; the note needs none


def _sample(f) -> object:
    """A value for field ``f`` as the code before the notes held it (lists where tuples are now)."""
    if isinstance(f.default, tuple):
        return [f"{f.name}-1", f"{f.name}-2"]
    if isinstance(f.default, bool):
        return True
    return {"phases": [(1.0, "creating")]}.get(f.name, f"{f.name}-value")


def _saved_and_loaded(objects: dict) -> dict:
    return persistence.loads(persistence.dumps({"objects": objects}))["objects"]


@pytest.mark.parametrize("path", sorted(KINDS))
def test_a_state_saved_with_the_old_attributes__loads_into_the_note_and_they_are_gone(path):
    obj = _new(path)
    kind = KINDS[path]
    for f in fields(kind):   # what the code before this note set: one attribute per field
        setattr(obj, f"_awslab_{f.name}", _sample(f))
    loaded = _saved_and_loaded({"obj": obj})["obj"]

    held = side(loaded)
    assert type(held) is kind
    for f in fields(kind):
        want = _sample(f)
        assert getattr(held, f.name) == (tuple(want) if isinstance(want, list) and isinstance(f.default, tuple)
                                         else want), f.name
    assert not [k for k in vars(loaded) if k.startswith("_awslab_")]
    # And the new form survives a save and a load of its own.
    again = _saved_and_loaded({"obj": loaded})["obj"]
    assert vars(again)[ATTR] == held


def test_an_old_db_instance__reports_the_status_it_had_and_its_timeline_goes_on():
    from awslab.local import patches

    patches.apply()   # the status patch: the timeline's, then the one moto set
    db = _new("moto.rds.models:DBInstance")
    db.__dict__.update(_awslab_status="available", _awslab_engine_key=None,
                       _awslab_phases=[(latency.now() + 3600, "rebooting")], _awslab_secondary_az="us-east-1b")
    loaded = _saved_and_loaded({"db": db})["db"]
    assert loaded.status == "rebooting"
    note(loaded, phases=())
    assert loaded.status == "available" and side(loaded).secondary_az == "us-east-1b"


def test_a_copy__shares_no_change_with_its_original():
    primary = _new("moto.rds.models:DBInstance")
    note(primary, engine_key="rds.primary", secondary_az="us-east-1b")
    replica = copy.copy(primary)   # as moto makes a read replica
    note(replica, engine_key="rds.replica")
    assert side(primary).engine_key == "rds.primary" and side(replica).engine_key == "rds.replica"
    assert side(replica).secondary_az == "us-east-1b"


def test_every_kind__is_found_by_its_class_and_a_subclass_takes_its_base_s():
    from moto.rds.models import DBInstanceClustered, DBSnapshot

    assert kind_of(DBInstanceClustered) is DbInstanceSide
    assert kind_of(DBSnapshot) is Side
    for path, kind in KINDS.items():
        assert kind_of(type(_new(path))) is kind, path

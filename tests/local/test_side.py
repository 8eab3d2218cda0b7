"""The local AWS's notes on moto's objects (local/side.py): one dataclass per kind of object, saved
with the state; a state saved before them (one ``_awslab_<field>`` attribute per field) loads into
them; a copy of an object (moto copies a replica from its source) never shares a change."""

from __future__ import annotations

import copy
import importlib
from dataclasses import fields

import pytest

from awslab.local import latency, persistence
from awslab.local.side import ATTR, BY_CLASS, DbInstanceSide, Side, kind_of, note, side


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


@pytest.mark.parametrize("path", sorted(BY_CLASS))
def test_a_state_saved_with_the_old_attributes__loads_into_the_note_and_they_are_gone(path):
    obj = _new(path)
    kind = BY_CLASS[path]
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
    for path, kind in BY_CLASS.items():
        assert kind_of(type(_new(path))) is kind, path


# --- a whole stack, saved in the old form, loaded by this code ------------------------------------

# Run in a process of its own (it loads moto's backends): the state's notes written back as the
# attributes the code before them set, one ``_awslab_<field>`` each (tuples as the lists they were).
_TO_OLD_FORM = r"""
import os, sys
from pathlib import Path
os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
from dataclasses import fields
from awslab.local import latency, persistence
from awslab.local.side import ATTR

path = sys.argv[1]
persistence.Store(Path(path).parent)   # registers the reducers a server does (RSA keys)
state = persistence.loads(open(path, "rb").read())
latency.ExpiringDict._purge = lambda self: None   # a purge reads (so makes) every entry's note
seen, todo, notes = set(), [state], 0
while todo:
    obj = todo.pop()
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), type)):
        continue
    seen.add(id(obj))
    if isinstance(obj, dict):
        todo += list(obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        todo += list(obj)
    elif hasattr(obj, "__dict__"):
        held = obj.__dict__.pop(ATTR, None)
        if held is not None:
            notes += 1
            for f in fields(held):
                value = getattr(held, f.name)
                if value != f.default:
                    obj.__dict__["_awslab_" + f.name] = list(value) if isinstance(value, tuple) and f.name in (
                        "phases", "members") else value
        todo += list(obj.__dict__.values())
open(path, "wb").write(persistence.dumps(state))
print(notes)
"""


@pytest.mark.lifecycle
@pytest.mark.engines
def test_a_stack_saved_before_the_notes__comes_back_with_its_data_and_verify_passes(awslab, aws_sandbox, stack,
                                                                                    monkeypatch):
    import json
    import subprocess
    import sys

    from conftest import engines_of, shell

    monkeypatch.setenv("AWSLAB_LOCAL_ENGINES", "on")
    try:
        assert awslab("up", "week6", "--name", stack).code == 0
        db = awslab("connect", "db", "--name", stack).out.strip()
        cache = awslab("connect", "cache", "--name", stack).out.strip()
        shell(db, "-c", "\"CREATE TABLE notes (t text); INSERT INTO notes VALUES ('kept')\"")
        assert shell(cache, "SET", "greeting", "hello") == "OK"
        before = json.loads(awslab("status", "--name", stack, "--output", "json").out)["resources"]
        assert awslab("local", "stop").code == 0

        state = aws_sandbox / "local" / "state.pickle"
        made = subprocess.run([sys.executable, "-c", _TO_OLD_FORM, str(state)], capture_output=True, text=True,
                              timeout=120)
        assert made.returncode == 0 and int(made.stdout) > 10, made.stderr
        old = state.read_bytes()
        assert b"awslab.local.side" not in old and b"_awslab_members" in old and b"_awslab_auth_token" in old

        # This code loads it: the same resources, the data behind the same endpoints (the engines are
        # found by the keys, members and AUTH token the old attributes held), verify passes.
        after = json.loads(awslab("status", "--name", stack, "--output", "json").out)["resources"]
        assert [(r["key"], r["id"], r["endpoint"]) for r in after] == [(r["key"], r["id"], r["endpoint"]) for r in before]
        assert shell(awslab("connect", "db", "--name", stack).out.strip(), "-tAc", "'SELECT t FROM notes'") == "kept"
        assert shell(awslab("connect", "cache", "--name", stack).out.strip(), "GET", "greeting") == "hello"
        verify = awslab("verify", "--name", stack)
        assert verify.code == 0, verify.out
        assert awslab("failover", "--cache", "--name", stack).code == 0   # the group's members, swapped
        assert shell(awslab("connect", "cache", "--name", stack).out.strip(), "GET", "greeting") == "hello"
    finally:
        engines_of(aws_sandbox, stop=True)

"""The layer's patches as a registry: each names a row of awslab/local/patches/GAPS.md, every row
closed by patches is named by one, and ``apply`` applies them in their stated order, once, and
refuses a target that is not there (the primitive is checked on throwaway classes, not moto)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from awslab.local import patches
from awslab.local.patches._patch import PatchError, Registry, registry

GAPS = Path(patches.__file__).with_name("GAPS.md")
patches.load_all()   # CloudFormation's patches too (registered when moto's CloudFormation is imported)
ROW = re.compile(r"^\| `([a-z0-9-]+)` \| (.+?) \| (patched|partly patched|outside|partly outside|left) \| (.+) \|$")


def _rows() -> dict[str, str]:
    """id -> status, for every row of the gaps table (a malformed row fails here)."""
    lines = [line for line in GAPS.read_text().splitlines() if line.startswith("| `")]
    rows: dict[str, str] = {}
    for line in lines:
        m = ROW.match(line)
        assert m, f"GAPS.md row not as the table's header says: {line[:80]}"
        assert m.group(1) not in rows, f"GAPS.md id {m.group(1)} twice"
        rows[m.group(1)] = m.group(3)
    return rows


def test_gaps__every_patch_names_a_row_of_the_gaps_table():
    rows = _rows()
    unknown = [f"{p.where} names {gap}" for p in registry.patches() for gap in p.gaps if gap not in rows]
    assert unknown == []


def test_gaps__every_row_closed_by_patches_is_named_by_a_patch():
    named = {gap for p in registry.patches() for gap in p.gaps}
    closed = [gap for gap, status in _rows().items() if status in ("patched", "partly patched")]
    assert closed and [gap for gap in closed if gap not in named] == []


def test_gaps__rows_closed_elsewhere_are_named_by_no_patch():
    named = {gap for p in registry.patches() for gap in p.gaps}
    elsewhere = [gap for gap, status in _rows().items() if status not in ("patched", "partly patched")]
    assert [gap for gap in elsewhere if gap in named] == []


def test_layer__create_db_instance_is_wrapped_as_before_states_inside_rejects():
    """The order that was the order of calls in apply(): the timeline innermost, the refusals
    outside it (they run first on a call), backing.py's hooks outside all (installed later)."""
    order = [(p.phase, p.new.__name__) for p in registry.patches()
             if p.where == "moto.rds.models:RDSBackend.create_db_instance"]
    assert order == [("states", "timeline"), ("rejects", "create_db_instance")]
    group = [p.module.rsplit(".", 1)[-1] + ":" + p.phase for p in registry.patches()
             if p.where == "moto.elasticache.models:ElastiCacheBackend.create_replication_group"]
    assert group == ["elasticache:objects", "elasticache:states", "elasticache:rejects", "cache_parameters:services"]


def test_layer__applied_twice_wraps_nothing_twice():
    patches.apply()
    from moto.rds.models import DBInstance, RDSBackend

    before = RDSBackend.create_db_instance, DBInstance.status, RDSBackend.promote_read_replica
    patches.apply()
    assert (RDSBackend.create_db_instance, DBInstance.status, RDSBackend.promote_read_replica) == before
    assert registry.applied() == registry.patches()
    layers, fn = [], RDSBackend.create_db_instance
    while hasattr(fn, "__wrapped__"):   # backing.py's hooks, if installed, are outside the layer's
        layers += [fn.__awslab_patch__.phase] if hasattr(fn, "__awslab_patch__") else []
        fn = fn.__wrapped__
    assert layers == ["rejects", "states"]   # outermost first, each once


class Throwaway:
    def hello(self, name):
        return f"hello {name}"

    @classmethod
    def make(cls, n):
        return [cls.__name__] * n


def _throwaway() -> type:
    return type("Throwaway", (Throwaway,), {"hello": Throwaway.hello})


def test_apply__a_missing_target_raises_naming_it_and_changes_nothing():
    target, reg = _throwaway(), Registry()
    reg.patch(target, "hello", gap="g", phase="answers")(lambda original, self, name: original(self, name).upper())
    reg.patch(target, "renamed_in_this_moto", gap="g", phase="answers")(lambda original, self: None)
    with pytest.raises(PatchError, match="Throwaway.renamed_in_this_moto"):
        reg.apply()
    assert target().hello("x") == "hello x" and reg.applied() == []


def test_apply__a_missing_module_or_class_raises_naming_it():
    reg = Registry()
    reg.patch("awslab.no_such_module:Backend", "m", gap="g", phase="answers")(lambda original, self: None)
    with pytest.raises(PatchError, match="awslab.no_such_module"):
        reg.apply()
    reg = Registry()
    reg.patch("awslab.local.patches._patch:NoSuchClass", "m", gap="g", phase="answers")(lambda original, self: None)
    with pytest.raises(PatchError, match="NoSuchClass"):
        reg.apply()


def test_apply__an_add_of_what_the_target_already_has_raises():
    target, reg = _throwaway(), Registry()
    reg.patch(target, "hello", gap="g", phase="answers", kind="add")(lambda self, name: name)
    with pytest.raises(PatchError, match="already|now has"):
        reg.apply()


def test_apply__twice_does_not_wrap_twice():
    target, reg = _throwaway(), Registry()

    @reg.patch(target, gap="g", phase="answers")
    def hello(original, self, name):
        return original(self, name) + "!"

    reg.apply()
    first = target.hello
    assert reg.apply() == []
    assert target.hello is first and target().hello("x") == "hello x!"
    assert [p.where for p in reg.applied()] == [f"{Throwaway.__module__}:Throwaway.hello"]


def test_apply__phases_in_order_then_registration_order_the_later_wrapping_the_earlier():
    target, reg = _throwaway(), Registry()
    calls: list[str] = []

    def tagger(tag):
        def wrapper(original, self, name):
            calls.append(tag)
            return original(self, name)
        return wrapper

    reg.patch(target, "hello", gap="g", phase="answers")(tagger("answers-1"))
    reg.patch(target, "hello", gap="g", phase="states")(tagger("states"))
    reg.patch(target, "hello", gap="g", phase="answers")(tagger("answers-2"))
    reg.apply()
    target().hello("x")
    assert calls == ["answers-2", "answers-1", "states"]   # outermost first


def test_patch__two_modules_on_one_target_in_one_phase_are_refused():
    reg = Registry()

    reg.patch("m:C", "f", gap="g", phase="answers")(lambda original, self: original(self))
    reg.patch("m:C", "f", gap="g", phase="states", module="somewhere.else")(lambda original, self: original(self))
    with pytest.raises(PatchError, match="both"):
        reg.patch("m:C", "f", gap="g", phase="answers", module="somewhere.else")(lambda original, self: original(self))


def test_wrap__a_classmethod_stays_one_and_gets_the_function():
    target, reg = _throwaway(), Registry()

    @reg.patch(target, "make", gap="g", phase="answers")
    def make(original, cls, n):
        return original(cls, n + 1)

    reg.apply()
    assert isinstance(vars(target)["make"], classmethod)
    assert target.make(1) == ["Throwaway"] * 2


def test_derive__gets_the_original_and_returns_the_new_value():
    target, reg = _throwaway(), Registry()
    reg.patch(target, "hello", gap="g", phase="answers", kind="derive")(
        lambda original: property(lambda self: original(self, "property")))
    reg.apply()
    assert target().hello == "hello property"

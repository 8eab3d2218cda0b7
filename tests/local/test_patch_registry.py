"""The primitive of the layer's patches: ``apply`` applies them in their stated order, once, and
refuses a target that is not there (checked on throwaway classes, not moto)."""

from __future__ import annotations

import pytest

from awslab.local.patches._patch import PatchError, Registry


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

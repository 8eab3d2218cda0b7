"""The kinds registry's contract: capabilities are declared, never probed, and checked when the
registry is made."""

from __future__ import annotations

import pytest

from awslab.aws.kinds import KINDS
from awslab.spec.model import CAPABILITIES, Kinds


class _Base:
    kind = "thing"
    capabilities: frozenset[str] = frozenset()

    def create(self, run, d):
        return None

    def delete(self, run, f):
        return None


def test_a_declared_capability_needs_its_methods_and_a_method_needs_its_declaration():
    class Declared(_Base):
        capabilities = frozenset({"ready"})

    class Undeclared(_Base):
        def ready(self, run, d, f):
            return f

    class Half(_Base):
        capabilities = frozenset({"update"})

        def incomplete(self, d, f, found):
            return None

    with pytest.raises(TypeError, match="'ready' declared without ready"):
        Kinds([Declared()])
    with pytest.raises(TypeError, match="'ready' declared nowhere, with ready"):
        Kinds([Undeclared()])
    with pytest.raises(TypeError, match="'update' declared without incomplete, complete"):
        Kinds([Half()])
    with pytest.raises(TypeError, match="unknown capabilities"):
        Kinds([type("Odd", (_Base,), {"capabilities": frozenset({"fly"})})()])
    with pytest.raises(TypeError, match="two handlers"):
        Kinds([_Base(), _Base()])
    with pytest.raises(TypeError, match="not a ResourceKind"):
        Kinds([object()])
    assert not Kinds([_Base()]).can("thing", "ready")


def test_the_labs_registry_declares_what_each_handler_does():
    assert KINDS.can("db-instance", "failover") and KINDS.can("db-replica", "promote")
    assert not KINDS.can("db-replica", "update") and KINDS.can("subnet", "replace")
    assert len(KINDS.areas) == 7 and "vpc" in KINDS and "db-restore" in KINDS
    with pytest.raises(KeyError):
        KINDS.can("vpc", "teleport")
    assert set(CAPABILITIES) >= {c for k in KINDS for c in KINDS[k].capabilities}

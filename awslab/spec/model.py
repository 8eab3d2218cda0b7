"""The values that flow from discovery through planning to the executor.

``Desired`` is what the lab wants (pure data from the lab file), ``Found`` is what discovery saw
in AWS, ``Step`` is one planned action on one resource. None of them holds a client. Here too:
``ResourceKind``, the contract of a kind's handler, and ``Kinds``, the registry of handlers the
planner and the executor are handed (aws/kinds.py makes the lab's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Protocol, runtime_checkable

CREATE, KEEP, UPDATE, DELETE = "create", "keep", "update", "delete"
FAILOVER = "failover"          # a forced failover of a Multi-AZ primary or a cache's primary node
PROMOTE = "promote"            # a read replica made a standalone instance (PromoteReadReplica)
REPLACE = "replace"            # differs from the lab in what AWS cannot change in place: shown, never run
MUTATING_ACTIONS = (CREATE, UPDATE, DELETE, FAILOVER, PROMOTE)


@dataclass(frozen=True)
class Desired:
    key: str                   # the resource's place in the topology, e.g. "network.subnet.public"
    kind: str                  # the handler that creates and deletes it, e.g. "subnet"
    name: str                  # the physical name awslab gives it
    deps: tuple[str, ...] = ()
    spec: dict[str, Any] = field(default_factory=dict, compare=False)  # kind-specific settings


@dataclass(frozen=True)
class Found:
    """What discovery (or a step) saw; a step that changes a resource returns a new Found."""

    key: str
    kind: str
    id: str                    # the physical id: vpc-..., a DB identifier, a role name
    state: str                 # AWS's own word: available, running, creating, deleting ...
    created: datetime | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  # what the kind needs later (endpoints, ARNs)

    def get(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


def show(value: Any) -> str:
    """A setting's value as the lab file spells it (booleans lower-case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Setting:
    """One lab setting a kind carries, declared once with its AWS names: the lab key and the
    field of its lab section, the Create* and Modify* parameters that set it (none to modify: AWS
    cannot change it in place), the Describe* field that shows it (``read`` turns that value into
    the lab's terms, None while it is settling), the CloudFormation properties, and the verify
    check that compares it. Create, the in-place diff, the export and verify read the table."""

    key: str
    field: str
    create: tuple[str, ...] = ()
    modify: tuple[str, ...] = ()
    describe: str = ""
    cfn: tuple[str, ...] = ()
    check: str | None = None
    read: Callable[[Any], Any] | None = None
    grows_only: bool = False   # AWS only grows it (storage): a smaller lab value is drift, never a change
    write: Callable[[Any], Any] | None = None   # the lab's value as AWS takes it, where they differ ("1" for true)
    # What changing it in place costs, in words (``judge(old, new, section)``), raising UsageError
    # for a change AWS refuses (an engine downgrade): the plan then stops before anything changes.
    judge: Callable[[Any, Any, Any], str] | None = None
    # Left empty in the lab, AWS's default holds (a maintenance window): neither sent nor compared.
    optional: bool = False
    # AWS's value read in the terms of the lab's own (``read_for(shown, wanted)``), where those
    # depend on what the lab says: an engine version named by its major alone or in full.
    read_for: Callable[[Any, Any], Any] | None = None

    def wanted(self, section: Any) -> Any:
        return getattr(section, self.field)

    def unset(self, section: Any) -> bool:
        return self.optional and self.wanted(section) in ("", None)

    def as_lab(self, raw: dict, section: Any) -> bool:
        """Whether AWS shows the lab's value (an unset optional setting: whatever AWS chose)."""
        return self.unset(section) or self.seen(raw, section) == self.wanted(section)

    def seen(self, raw: dict, section: Any = None) -> Any:
        value = raw.get(self.describe)
        if value is None:
            return None
        if self.read_for is not None and section is not None:
            return self.read_for(value, self.wanted(section))
        return self.read(value) if self.read is not None else value


@dataclass(frozen=True)
class Change:
    """A setting an update step changes in place: from ``old`` (what AWS shows) to ``new`` (what the
    lab wants), and where ``new`` comes from (this command's --set, the lab file)."""

    setting: str
    old: Any
    new: Any
    source: str = ""
    cost: str = ""             # what AWS does to make it (an engine upgrade's downtime), when it says more than the values

    def __str__(self) -> str:
        said = f"{self.setting}: {show(self.old)} -> {show(self.new)}"
        said = f"{said} ({self.source})" if self.source else said
        return f"{said}: {self.cost}" if self.cost else said


def parameters(settings: Iterable[Setting], section: Any, where: str) -> dict[str, Any]:
    """The lab's values under their AWS names ``where`` ("create" or "cfn"): each setting's
    parameters all set to its value, as AWS takes it (``write``) where the two differ."""
    return {name: s.write(s.wanted(section)) if s.write else s.wanted(section)
            for s in settings if not s.unset(section) for name in getattr(s, where)}


def changes_in_place(settings: Iterable[Setting], section: Any, raw: dict) -> tuple[Change, ...]:
    """The settings AWS changes in place whose shown value differs from the lab's: the diff, once."""
    out = []
    for s in settings:
        if not s.modify or s.unset(section):
            continue
        have, want = s.seen(raw, section), s.wanted(section)
        if have is None or have == want or (s.grows_only and want < have):
            continue
        out.append(Change(s.key, have, want, cost=s.judge(have, want, section) if s.judge else ""))
    return tuple(out)


def modify_arguments(settings: Iterable[Setting], changes: Iterable[Change]) -> dict[str, Any]:
    """The Modify* arguments that make ``changes``."""
    table = {s.key: s for s in settings}
    return {name: c.new for c in changes for name in table[c.setting].modify}


@dataclass(frozen=True)
class Step:
    key: str
    kind: str
    action: str                # create / keep / update / delete / failover
    deps: tuple[str, ...]
    desired: Desired | None = None
    found: Found | None = None
    note: str = ""             # why, in words (a change of settings says it through ``changes``)
    changes: tuple[Change, ...] = ()   # an update of settings in place: what the executor applies

    @property
    def reason(self) -> str:
        return "; ".join([str(c) for c in self.changes] + ([self.note] if self.note else []))

    @property
    def name(self) -> str:
        if self.found is not None:
            return self.found.id
        return self.desired.name if self.desired else self.key


@dataclass(frozen=True)
class Plan:
    stack: str
    steps: tuple[Step, ...]

    @property
    def mutating(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.action in MUTATING_ACTIONS)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.action] = out.get(s.action, 0) + 1
        return out


# What a kind's handler may do beyond create and delete, each with the methods it brings:
# "settings" changes in place the settings of its table that differ from the lab (``changes``
# computes the diff once as ``Change`` values, ``apply`` makes them); "update" completes a
# half-made resource (``incomplete`` says why, ``complete`` does it); "ready" waits until it is usable; "replace"
# says where it differs in what AWS cannot change (``drift``: shown, never run); "failover" and
# "promote" are the recovery actions; "final-snapshot" names the snapshot its delete keeps; "cost"
# prices it in a region through spec/pricing.py (``estimate`` what a Desired will cost per hour,
# ``priced`` what a Found costs now: lists of ``pricing.Line``).
# "export" writes its CloudFormation form (``export(ExportFor) -> Export | None``, spec/cfn.py: its part of
# the lab's template, None where the lab has none of it), which `awslab export` assembles in the registry's order.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "settings": ("changes", "apply"),
    "update": ("incomplete", "complete"),
    "ready": ("ready",),
    "replace": ("drift",),
    "failover": ("failover",),
    "promote": ("promote",),
    "final-snapshot": ("final_snapshot_id",),
    "cost": ("estimate", "priced"),
    "export": ("export",),
}


@runtime_checkable
class ResourceKind(Protocol):
    """A resource kind's handler: its ``kind`` (the name steps carry), ``create(run, desired) ->
    Found`` and ``delete(run, found)``, and the optional ``capabilities`` it declares (keys of
    ``CAPABILITIES``), whose methods it then has. Nothing asks a handler what it can do by probing."""

    kind: str
    capabilities: frozenset[str]

    def create(self, run: Any, desired: Desired) -> Found: ...

    def delete(self, run: Any, found: Found) -> None: ...


class Kinds:
    """The registry the planner and the executor are handed: handler per kind, and the discovery
    areas that find what exists (each ``area(run) -> list[Found]``). Checked when made: every
    declared capability's methods exist, and no handler has a capability's method undeclared."""

    def __init__(self, handlers: Iterable[ResourceKind], areas: Iterable[Callable[[Any], list[Found]]] = ()) -> None:
        self._handlers: dict[str, ResourceKind] = {}
        for h in handlers:
            if not isinstance(h, ResourceKind):
                raise TypeError(f"{type(h).__name__} is not a ResourceKind (kind, capabilities, create, delete)")
            unknown = set(h.capabilities) - set(CAPABILITIES)
            if unknown:
                raise TypeError(f"{type(h).__name__} declares unknown capabilities {sorted(unknown)}")
            for cap, methods in CAPABILITIES.items():
                has = [callable(getattr(h, m, None)) for m in methods]
                if (cap in h.capabilities) != all(has) or any(has) != all(has):
                    raise TypeError(f"{type(h).__name__}: capability '{cap}' declared "
                                    f"{'without' if cap in h.capabilities else 'nowhere, with'} {', '.join(methods)}")
            if h.kind in self._handlers:
                raise TypeError(f"two handlers for kind '{h.kind}'")
            self._handlers[h.kind] = h
        self.areas = tuple(areas)

    def __getitem__(self, kind: str) -> ResourceKind:
        return self._handlers[kind]

    def __contains__(self, kind: str) -> bool:
        return kind in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def can(self, kind: str, capability: str) -> bool:
        if capability not in CAPABILITIES:
            raise KeyError(capability)
        return capability in self._handlers[kind].capabilities


# States in which a resource is usable as it is: a kept resource in any other state is waited for.
READY_STATES = {"available", "running", "attached", "Complete"}

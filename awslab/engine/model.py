"""The values that flow from discovery through planning to the executor.

``Desired`` is what the lab wants (pure data from the lab file), ``Found`` is what discovery saw
in AWS, ``Step`` is one planned action on one resource. None of them holds a client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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


@dataclass(frozen=True)
class Step:
    key: str
    kind: str
    action: str                # create / keep / update / delete / failover
    deps: tuple[str, ...]
    desired: Desired | None = None
    found: Found | None = None
    reason: str = ""

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

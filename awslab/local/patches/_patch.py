"""The one primitive of awslab's layer over moto: a patch is a registered value, applied in a stated
order, exactly once, and never silently skipped (after LocalStack's ``localstack/utils/patch.py``).

A patch module declares each change to moto where it is written::

    @patch("moto.rds.models:RDSBackend", gap="rds-promote-non-replica", phase="answers")
    def promote_read_replica(original, self, db_kwargs):
        ...                                   # refuse what AWS refuses
        return original(self, db_kwargs)

and nothing happens until ``apply()``. A patch holds:

- its **target**: a class or module, given as ``"module:Qualified.Name"`` (or ``"module"``) so
  that moto is imported only when the layer is applied (the CLI never imports it), or as the
  object itself; and the **attribute** it changes (by default the decorated function's name);
- the **gap** it closes: one or more ids of rows of ``GAPS.md`` (beside this file), which
  ``tests/local/test_patch_registry.py`` checks against the file;
- its **phase** (``PHASES``) and its **kind**:

  ``wrap``    the attribute exists; the patch is called in its place with the original first
              (``original, self, *args``); a classmethod or staticmethod stays one;
  ``replace`` the attribute exists; the patch (a function, property or classmethod) takes its place;
  ``add``     moto has no such attribute on the target itself (an inherited default, or an
              attribute moto sets per instance, may be there); the patch becomes it;
  ``derive``  the attribute exists; ``patch(original)`` returns what takes its place (a property
              built on moto's, a setter added to moto's property).

**Order.** ``Registry.apply`` applies the patches phase by phase, in the order of ``PHASES``; within
a phase, in the order they were registered (the order of the lines in their module). A target
wrapped twice is wrapped first by the earlier patch, so the later one is the outer wrapper: it
runs first on a call and sees what the inner ones made. Two modules may not patch one attribute in
the same phase (their order would then be the order of the imports): that is refused when the
second registers.

**Once, and loudly.** Every target is resolved and checked before anything changes; a missing
module, class or attribute (or an ``add`` that moto now has) raises ``PatchError`` naming it, so
a moto upgrade that renames a method stops the server instead of leaving a gap open. A patch
applied once is never applied again: ``apply()`` twice wraps nothing twice. ``Registry.patches()``
lists every patch in the order applied, ``Registry.applied()`` those applied so far.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

# Applied in this order, each wrapping what the ones before made (see GAPS.md for what each closes).
PHASES = (
    "objects",    # what a call makes and what it holds: a group's member clusters, a node's endpoint
    "states",     # resources pass through their states on the latency profile's timelines
    "rejects",    # what AWS refuses, refused before the rest runs
    "answers",    # what moto answers wrong or leaves out, and the calls it lacks
    "services",   # whole features moto lacks or runs otherwise: cache parameter groups, maintenance,
                  # Run Command, CloudFormation's resources and lifecycle, StackSets
)
# backing.py's engine hooks (``backing._after``) are installed after ``apply()`` returns: they
# wrap all of the above.
KINDS = ("wrap", "replace", "add", "derive")


class PatchError(RuntimeError):
    """A patch whose target is missing (or already there, for ``add``), or registered ambiguously."""


@dataclass(eq=False)
class Patch:
    """One change to moto: ``target.name`` becomes ``new`` (wrapped, replaced, added or derived)."""

    target: Any
    name: str
    new: Any
    gaps: tuple[str, ...]
    phase: str
    kind: str = "wrap"
    module: str = ""          # the awslab module that registered it
    seq: int = 0              # registration order
    applied: bool = False
    original: Any = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """``module:Class.attribute``: what the patch changes, as its error messages name it."""
        return f"{target_name(self.target)}.{self.name}"

    def __str__(self) -> str:
        return f"{self.phase:<8} {self.kind:<7} {self.where}  [{', '.join(self.gaps)}]  ({self.module})"


def target_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None)
    return f"{module}:{target.__qualname__}" if module and hasattr(target, "__qualname__") else target.__name__


def resolve(target: Any) -> Any:
    """The class or module ``target`` names (``"module:Qualified.Name"`` or ``"module"``)."""
    if not isinstance(target, str):
        return target
    module_name, _, qualname = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise PatchError(f"patch target {target}: module {module_name} cannot be imported ({exc})") from exc
    for part in qualname.split(".") if qualname else ():
        if not hasattr(obj, part):
            raise PatchError(f"patch target {target}: {part} not found in {module_name}")
        obj = getattr(obj, part)
    return obj


def _has(obj: Any, name: str) -> bool:
    try:
        inspect.getattr_static(obj, name)
    except AttributeError:
        return False
    return True


def _own(obj: Any, name: str) -> bool:
    """Is ``name`` defined by ``obj`` itself (not inherited from a base class)?"""
    return name in vars(obj) if isinstance(obj, type) else hasattr(obj, name)


def _wrapper(patch: Patch, original: Any) -> Any:
    """What takes the place of ``original``: a function that calls ``patch.new(original, ...)``,
    of the same kind (function, classmethod, staticmethod)."""
    if isinstance(original, (classmethod, staticmethod)):
        return type(original)(_wrapper(patch, original.__func__))
    if not callable(original):
        raise PatchError(f"patch {patch.where}: kind 'wrap' needs a callable, found {type(original).__name__} "
                         "(a property is changed with kind 'derive')")
    new = patch.new

    @functools.wraps(original)
    def proxy(*args, **kwargs):
        return new(original, *args, **kwargs)

    proxy.__awslab_patch__ = patch
    return proxy


class Registry:
    """The patches of a layer, in the order they apply (one per process: ``registry`` below)."""

    def __init__(self, phases: tuple[str, ...] = PHASES) -> None:
        self.phases = phases
        self._patches: list[Patch] = []

    def patch(self, target: Any, name: str | None = None, *, gap: str | tuple[str, ...], phase: str,
              kind: str = "wrap", module: str | None = None) -> Callable[[Any], Any]:
        """Register the decorated function (or property, classmethod) as a patch of ``target.name``;
        the decorated object is returned unchanged, so patches stack and stay callable. ``module``:
        the module the patch belongs to, by default the one that calls ``patch``."""
        if module is None:
            caller = inspect.currentframe().f_back
            module = caller.f_globals.get("__name__", "") if caller is not None else ""
        if phase not in self.phases:
            raise ValueError(f"unknown phase {phase!r}: one of {', '.join(self.phases)}")
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
        gaps = (gap,) if isinstance(gap, str) else tuple(gap)
        if not gaps:
            raise ValueError("a patch names the gap it closes")

        def register(new: Any) -> Any:
            fn = getattr(new, "fget", None) or getattr(new, "__func__", None) or new
            attr = name or fn.__name__
            added = Patch(target, attr, new, gaps, phase, kind, module, len(self._patches))
            for other in self._patches:
                if other.where == added.where and other.phase == phase and other.module != module:
                    raise PatchError(f"patch {added.where}: patched in phase {phase!r} by both {other.module} and "
                                     f"{module}; their order would be the imports' (give one another phase)")
            self._patches.append(added)
            return new

        return register

    def patches(self) -> list[Patch]:
        """Every registered patch, in the order ``apply`` applies them."""
        return sorted(self._patches, key=lambda p: (self.phases.index(p.phase), p.seq))

    def applied(self) -> list[Patch]:
        return [p for p in self.patches() if p.applied]

    def apply(self) -> list[Patch]:
        """Apply every patch not applied yet, in order; all targets are checked first, so a
        missing one raises ``PatchError`` before anything changes. Returns those applied now."""
        todo = [p for p in self.patches() if not p.applied]
        objects = {id(p): resolve(p.target) for p in todo}
        added: set[tuple[int, str]] = set()
        for p in todo:
            obj = objects[id(p)]
            exists = _has(obj, p.name) or (id(obj), p.name) in added
            if p.kind == "add":
                if _own(obj, p.name) or (id(obj), p.name) in added:
                    raise PatchError(f"patch {p.where}: moto now has {p.name}; review the patch (kind 'add')")
                added.add((id(obj), p.name))
            elif not exists:
                raise PatchError(f"patch {p.where}: {target_name(p.target)} has no attribute {p.name} "
                                 "(renamed or removed in this moto?)")
        for p in todo:
            obj = objects[id(p)]
            original = inspect.getattr_static(obj, p.name) if _has(obj, p.name) else None
            if p.kind == "wrap":
                value = _wrapper(p, original)
            elif p.kind == "derive":
                value = p.new(original)
            else:
                value = p.new
            p.original = original
            setattr(obj, p.name, value)
            p.applied = True
        return todo


registry = Registry()
patch = registry.patch

"""moto's request path: what moto works out again on every request that cannot change.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

from awslab.local.patches._patch import patch

_methods: dict[type, list[str]] = {}


@patch("moto.core.responses", gap="moto-dispatch-introspection", phase="objects")
def method_names_from_class(original, clazz):
    """Speed, not a gap: moto lists a response class's methods (``inspect.getmembers`` over the
    class and its bases, hundreds of members) on every request to find the action's handler, a
    twelfth of the local AWS's CPU serving the tests. Listed once per class: a class's methods do
    not change once the layer is applied, and it is applied before the first request (the part
    applied later, CloudFormation's at its first import, has them listed again: ``forget_methods``)."""
    names = _methods.get(clazz)
    if names is None:
        names = _methods[clazz] = original(clazz)
    return list(names)


def forget_methods() -> None:
    """After patches applied later (CloudFormation's layer, at its first import): list them again."""
    _methods.clear()

"""moto's request path: what moto works out again on every request that cannot change.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

import functools

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


_keys: dict[tuple, tuple[str, ...]] = {}
# The answers' shapes are moto's, made once per service; an error's, in the JSON protocols, is made
# for each answer: the names kept are bounded, and all worked out again past the bound.
KEYS_MAX = 20_000


@functools.cache
def _serializer_names() -> tuple:
    from moto.core.serialize import MISSING, AttributePickerContext, XFormedAttributePicker
    from moto.core.utils import get_value as value_of

    return MISSING, AttributePickerContext, XFormedAttributePicker, value_of


@patch("moto.core.serialize:ResponseSerializer", gap="moto-serializer-aliases", phase="objects")
def get_value(original, self, value, key, shape):
    """Speed, not a gap: for every member of every structure it answers (about a hundred for a
    DB instance, most of them absent), moto's serializer makes a context and six alias providers
    and tries each name they offer, in two spellings, each time: two fifths of the serializer's
    CPU. The names depend only on the object's class, the member's shape (and the structure it is
    read for) and its key, so they are worked out once for each (moto's ``Meta`` aliases are
    class attributes); each is then tried in moto's order, the response transformers as moto
    applies them. Any other value picker is moto's own path."""
    MISSING, AttributePickerContext, XFormedAttributePicker, value_of = _serializer_names()
    picker = self._value_picker
    if type(picker) is not XFormedAttributePicker:
        return original(self, value, key, shape)
    cache_key = (type(value), shape, getattr(shape, "parent", None), key, tuple(picker.alias_providers))
    names = _keys.get(cache_key)
    if names is None:
        if len(_keys) >= KEYS_MAX:
            _keys.clear()
        context = AttributePickerContext(obj=value, key=key, shape=shape)
        names = _keys[cache_key] = tuple(dict.fromkeys(picker.get_possible_keys(context)))
    for name in names:
        found = value_of(value, name, MISSING)
        if found is not MISSING:
            break
    else:
        found = None
    if picker.response_transformers:
        key_path = f"{'.'.join(self.path)}.{key}"
        for transform_path, transform in picker.response_transformers.items():
            if key_path.endswith(transform_path):
                return transform(found)
    return found

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


class _Other(Exception):
    """A document the direct writer leaves to xmltodict (comments, namespace maps, bad names)."""


_names_checked: set = set()
NAMES_MAX = 10_000


@patch("xmltodict", gap="moto-serializer-xml", phase="objects")
def unparse(original, input_dict, output=None, encoding="utf-8", full_document=True, short_empty_elements=False,
            comment_key="#comment", **kwargs):
    """Speed, not a gap: moto's serializer writes every XML answer with xmltodict, which checks each
    element's name character by character and writes through SAX's generator a call at a time:
    about a third of the serializer's CPU. The documents moto makes (elements, text, plain
    attributes such as the root's ``xmlns``) are written here directly, byte for byte as
    xmltodict writes them; anything else (pretty printing, an output stream, comments, namespace
    maps, a name xmltodict refuses) is xmltodict's. The writer is checked against xmltodict's own
    output once per process (``_writes_as_xmltodict``): a release that writes otherwise is used as
    it is."""
    if (output is None and encoding == "utf-8" and comment_key == "#comment" and not kwargs.get("pretty")
            and set(kwargs) <= {"pretty"} and _writes_as_xmltodict()):
        try:
            return _direct(input_dict, full_document, short_empty_elements)
        except _Other:
            pass
    return original(input_dict, output, encoding, full_document, short_empty_elements, comment_key, **kwargs)


def _direct(input_dict, full_document: bool, short: bool) -> str:
    if not isinstance(input_dict, dict) or len(input_dict) != 1:
        raise _Other
    out: list[str] = ['<?xml version="1.0" encoding="utf-8"?>\n'] if full_document else []
    ((key, value),) = input_dict.items()
    _XMLWriter(out, short).element(key, value, 0, full_document)
    return "".join(out)


@functools.cache
def _xmltodict_parts() -> tuple:
    from xml.sax.saxutils import quoteattr

    from xmltodict import _convert_value_to_string, _validate_name

    return _convert_value_to_string, _validate_name, quoteattr


class _XMLWriter:
    """xmltodict's ``_emit`` (its defaults: ``@`` attributes, ``#text``, no namespaces) and SAX's
    ``XMLGenerator`` (an element left open until it gets content: ``<a/>`` when short), in one."""

    __slots__ = ("out", "short", "open")

    def __init__(self, out: list[str], short: bool) -> None:
        self.out, self.short, self.open = out, short, False

    def element(self, key, value, depth: int, full_document: bool) -> None:
        text_of, _, quoteattr = _xmltodict_parts()
        if key == "#comment":
            raise _Other
        _check_name(key)
        if not hasattr(value, "__iter__") or isinstance(value, (str, bytes, bytearray, memoryview, dict)):
            value = [value]
        out = self.out
        for index, v in enumerate(value):
            if full_document and depth == 0 and index > 0:
                raise _Other   # several roots: xmltodict's error
            if v is None:
                v = {}
            elif not isinstance(v, (dict, str)):
                v = text_of(v)
            if isinstance(v, str):
                v = {"#text": v}
            cdata = None
            attrs = []
            children = []
            for ik, iv in v.items():
                if ik == "#text":
                    cdata = None if iv is None else text_of(iv)
                    continue
                if isinstance(ik, str) and ik.startswith("@"):
                    if ik == "@xmlns" and isinstance(iv, dict):
                        raise _Other
                    _check_name(ik[1:])
                    attrs.append((ik[1:], "" if iv is None else text_of(iv)))
                    continue
                if isinstance(iv, list) and not iv:
                    continue
                children.append((ik, iv))
            if self.open:   # the element before is open: it has content, this one
                out.append(">")
            out.append("<" + key)
            for name, attr in attrs:
                out.append(f" {name}={quoteattr(attr)}")
            self.open = self.short
            if not self.short:
                out.append(">")
            for child_key, child_value in children:
                self.element(child_key, child_value, depth + 1, full_document)
            if cdata:
                if self.open:
                    out.append(">")
                    self.open = False
                out.append(cdata.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;"))
            if self.open:
                out.append("/>")
                self.open = False
            else:
                out.append(f"</{key}>")


def _check_name(name) -> None:
    if name in _names_checked:
        return
    try:
        _xmltodict_parts()[1](name, "element")
    except (ValueError, TypeError):
        raise _Other from None   # xmltodict says why, in its own words
    if len(_names_checked) >= NAMES_MAX:
        _names_checked.clear()
    _names_checked.add(name)


# What the writer does, in documents checked against xmltodict's own output once per process.
SAMPLES = (
    {"R": {"@xmlns": "http://x/", "A": ["1", "", None, {}], "B": {"#text": "a<&>b", "C": True}, "D": [],
           "E": [{"F": 1.5}, {"F": None}], "G": (), "H": b"by\xfftes", "I": {"@k": "q\"'\n<&", "#text": "t"},
           "J": {"K": {"L": [[1, 2], 3]}}, "M": 0, "N": False}},
)


@functools.cache
def _writes_as_xmltodict() -> bool:
    import xmltodict

    original = getattr(xmltodict.unparse, "__wrapped__", xmltodict.unparse)
    try:
        return all(_direct(doc, full, short) == original(doc, full_document=full, short_empty_elements=short)
                   for doc in SAMPLES for full in (True, False) for short in (True, False))
    except Exception:  # noqa: BLE001 - any difference at all: xmltodict's own path
        return False


_error_tables: dict = {}


@patch("moto.core.errors:ErrorLookupFactory", "__init__", gap="moto-error-lookup", phase="objects")
def error_lookup_factory(original, self):
    """Speed, not a gap: moto makes a new ``ErrorLookupFactory`` for every error it answers, so
    its cache never serves: each error built its service's whole table of error shapes again (EC2:
    hundreds), about a thirtieth of the local AWS's CPU where discovery meets "not found" often.
    The tables depend only on the service's model, which is moto's and fixed: one per service."""
    original(self)
    self._error_lut_cache = _error_tables


@patch("moto.core.responses:BaseResponse", "_get_action", gap="moto-route-match", phase="objects")
def action_matched_once(original, self):
    """Speed, not a gap: each step of a request that needs its action (the parameters' parser,
    the handler's look-up, IAM's check, the answer's serializer) matches the request against its
    service's routes again: four matches a request, a tenth of moto's CPU on an RDS call. Kept per
    request: a response object reused for another request (S3 keeps one) is matched again."""
    request = self.normalized_request
    kept = self.__dict__.get("_awslab_action")
    if kept is not None and kept[0] is request:
        return kept[1]
    action = original(self)
    self.__dict__["_awslab_action"] = (request, action)
    return action


_HOSTS_KEPT = 256
_backend_for_host: dict = {}


@patch("moto.moto_server.werkzeug_app:DomainDispatcherApplication", "get_backend_for_host",
       gap="moto-host-dispatch", phase="objects")
def backend_for_host(original, self, host):
    """Speed, not a gap: every request's host is matched against every service's URL patterns in
    turn (hundreds of regular expressions) to find its backend. The answer depends on the host
    alone: kept per host, for the few hosts a server sees (a bounded number: any beyond are matched
    as before)."""
    try:
        return _backend_for_host[host]
    except (KeyError, TypeError):
        pass
    found = original(self, host)
    if isinstance(host, str) and len(_backend_for_host) < _HOSTS_KEPT:
        _backend_for_host[host] = found
    return found


@patch("moto.moto_api._internal.moto_random:MotoRandom", "get_random_string", gap="moto-random-string",
       phase="objects", kind="replace")
def random_string_in_one_draw(self, length: int = 20, include_digits: bool = True, lower_case: bool = False):
    """Speed, not a gap: moto draws a random string a character at a time, and every answer's
    request id is 52 characters (a twentieth of moto's CPU on a small answer). Drawn in one call of
    the same generator: the same characters, lengths and cases, and as reproducible under moto's
    seed as before (another sequence of values)."""
    import string

    pool = string.ascii_letters + (string.digits if include_digits else "")
    drawn = "".join(self.choices(pool, k=length))
    return drawn.lower() if lower_case else drawn

"""botocore's data (service models, endpoints, partitions): parsed once per process, and kept
parsed on disk between processes.

botocore caches what its loader parses, but per session, and every ``boto3.Session()`` makes a new
one: each Context (every command run in one process: the tests, a class of stacks) parsed the
lab's eight service models again (~0.6 s), and moto builds a session for each region list it
needs (~0.5 s of the local AWS's start). The data is read-only once loaded, so one loader per
data path serves every session of the process.

Across processes, a command's first request waited for botocore to parse ~7 MB of JSON (EC2's
model alone ~0.1 s). The parsed form is kept in ``$XDG_CACHE_HOME/awslab/botocore-<version>/``
as ``marshal`` data (about three times faster to read than JSON), each file checked against the
size and mtime of the JSON it came from. The directory is the user's own (0700): marshal data is
trusted as the user's own files are. ``AWSLAB_SDK_CACHE=off`` turns the disk cache off.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import tempfile
import threading
from pathlib import Path

_lock = threading.Lock()
_loaders: dict = {}
CACHE_ENV = "AWSLAB_SDK_CACHE"


class _PathsOnce(list):
    """Search paths that take each path once: boto3 appends its own at every Session."""

    def append(self, path) -> None:
        if path not in self:
            super().append(path)


def cache_dir() -> Path | None:
    if os.environ.get(CACHE_ENV, "on") == "off":
        return None
    import botocore

    from awslab.home.state import cache_home

    return cache_home() / f"botocore-{botocore.__version__}"


def _plain(value):
    """botocore's OrderedDicts as dicts (ordered too), which marshal can write."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _file_loader(directory: Path):
    from botocore.loaders import _JSON_OPEN_METHODS, JSONFileLoader

    class MarshalCachedFileLoader(JSONFileLoader):
        """botocore's JSON file loader, reading a parsed copy when one matches the JSON file."""

        def load_file(self, file_path):
            source = next((file_path + ext for ext in _JSON_OPEN_METHODS if os.path.isfile(file_path + ext)), None)
            if source is None:
                return None
            cached = directory / (hashlib.sha256(source.encode()).hexdigest()[:24] + ".marshal")
            return _through(cached, source, lambda: _plain(super(MarshalCachedFileLoader, self).load_file(file_path)))

    return MarshalCachedFileLoader()


def _through(cached: Path, source, load):
    """``load()``'s data, kept marshalled in ``cached`` and read from there while ``source`` (the
    file it is parsed from) keeps its size and mtime; data marshal cannot write is not kept."""
    st = os.stat(source)
    stamp = (st.st_size, st.st_mtime_ns)
    try:
        with open(cached, "rb") as fh:
            seen, data = marshal.loads(fh.read())
        if tuple(seen) == stamp:
            return data
    except (OSError, EOFError, ValueError, TypeError):
        pass
    data = load()
    try:
        blob = marshal.dumps((stamp, data))
    except ValueError:
        return data
    _write(cached, blob)
    return data


def _write(path: Path, blob: bytes) -> None:
    """Best effort and atomic: a cache that cannot be written is only slower."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except OSError:
        pass


def share_across_sessions() -> None:
    """Every botocore session this process makes from now on uses the shared, disk-cached loader."""
    import botocore.loaders
    import botocore.session

    create = botocore.loaders.create_loader

    def shared_loader(search_path_string=None):
        with _lock:
            loader = _loaders.get(search_path_string)
            if loader is None:
                loader = create(search_path_string)
                loader._search_paths = _PathsOnce(loader.search_paths)
                directory = cache_dir()
                if directory is not None:
                    loader.file_loader = _file_loader(directory)
                _loaders[search_path_string] = loader
            return loader

    with _lock:
        if getattr(botocore.session.create_loader, "awslab_shared", False):
            return
        shared_loader.awslab_shared = True
        botocore.session.create_loader = shared_loader
        # moto's own model look-ups (``moto.core.utils``) import it from here by name, at import.
        botocore.loaders.create_loader = shared_loader
        _share_client_classes()
        _share_event_aliases()
        _parse_iso_timestamps_directly()


def _share_client_classes() -> None:
    """Each service's model and client class made once per process, not at every client.

    botocore makes a new ``ServiceModel`` for every client, so the shapes, operation models and
    error codes it works out (lazily, as requests need them) are worked out again for each one,
    and a new client class with a method for every operation (EC2: about 750). A command that made
    its clients afresh (real AWS, fault injection: ``Context._shared_key``) spent a quarter of its
    CPU there, and a class of stacks in one process made them for every stack. The model is
    read-only once made; the class is what botocore's and boto3's handlers of
    ``creating-client-class`` make of it, and every session registers the same ones."""
    from botocore.client import ClientCreator

    load_model, make_class = ClientCreator._load_service_model, ClientCreator._create_client_class
    models: dict = {}
    classes: dict = {}

    def _load_service_model(self, service_name, api_version=None):
        key = (self._loader, service_name, api_version)   # the loader is shared: one per search path
        model = models.get(key)
        if model is None:
            model = models.setdefault(key, load_model(self, service_name, api_version))
        return model

    def _create_client_class(self, service_name, service_model):
        key = (service_name, service_model)   # the model itself: one per service, kept above
        made = classes.get(key)
        if made is None:
            made = classes.setdefault(key, make_class(self, service_name, service_model))
        return made

    ClientCreator._load_service_model = _load_service_model
    ClientCreator._create_client_class = _create_client_class


def _share_event_aliases() -> None:
    """One cache of botocore's event-name aliases per process, not one per session.

    Every event a client emits or registers (``before-call.rds.DescribeDBInstances``, ...) goes
    through ``EventAliaser``, which rewrites old service names and caches the result per instance:
    each new session started cold and worked every name out again (a tenth of a fault-injected
    lifecycle's CPU, whose clients are made afresh), and so did every client (its emitter is a
    copy of its session's, aliases copied too). The alias of a name depends only on the name and
    botocore's fixed ``EVENT_ALIASES``, so every emitter using those shares one cache; one given
    other aliases keeps a cache of its own."""
    from botocore.hooks import EventAliaser
    from botocore.utils import EVENT_ALIASES

    init = EventAliaser.__init__
    shared: dict = {}

    def __init__(self, event_emitter, event_aliases=None):
        init(self, event_emitter, event_aliases)
        # A client's emitter is a copy of its session's, made with a copy of the aliases.
        if event_aliases is None or event_aliases == EVENT_ALIASES:
            self._alias_name_cache = shared

    EventAliaser.__init__ = __init__


# An ISO 8601 time in UTC as AWS writes it: 2026-12-07T05:58:51.123Z (or +00:00).
_ISO_UTC = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|\+00:00)\Z")


def _parse_iso_timestamps_directly() -> None:
    """botocore reads every timestamp of an answer with dateutil's general parser (~50 us each; a
    DescribeDBInstances page holds dozens): the ISO 8601 UTC form AWS sends is read directly here,
    anything else by botocore's own parser, as before.

    The result is the same object botocore's parser makes, its ``tzinfo`` included: dateutil
    decides it from the machine's zone (``tzlocal()`` where the zone is UTC, ``tzutc()`` elsewhere),
    so it is asked once per suffix and its answer kept; where the zone has daylight saving time
    that choice can depend on the date, and every timestamp goes to botocore's parser."""
    import datetime
    import time

    import botocore.parsers

    original = botocore.parsers.DEFAULT_TIMESTAMP_PARSER
    if time.daylight or getattr(original, "awslab_direct", False):
        return
    zones: dict[str, object] = {}

    def parse(value):
        match = _ISO_UTC.match(value) if isinstance(value, str) else None
        if match is None:
            return original(value)
        year, month, day, hour, minute, second, fraction, suffix = match.groups()
        zone = zones.get(suffix)
        if zone is None:
            zone = zones.setdefault(suffix, original(f"2000-01-01T00:00:00{suffix}").tzinfo)
        try:
            return datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                                     int(fraction.ljust(6, "0")) if fraction else 0, tzinfo=zone)
        except ValueError:   # no such day or hour: botocore's parser says so in its own words
            return original(value)

    parse.awslab_direct = True
    botocore.parsers.DEFAULT_TIMESTAMP_PARSER = parse


def share_with_moto() -> None:
    """The local AWS's moto reads its models and its own data through the same disk cache: its
    request router loads each service's model with a loader of its own (``moto.core.loaders``,
    botocore's plus moto's extras: a new one per model, reading the JSON again), and its EC2 parses
    the instance types and their offerings in every region from gzipped JSON at import (~0.2 s).
    Together a quarter of the server's start. Call before moto's services are imported."""
    import moto.core.loaders
    import moto.core.utils
    import moto.utilities.utils

    with _lock:
        if getattr(moto.utilities.utils.load_resource, "awslab_shared", False):
            return
        directory = cache_dir()
        loader = moto.core.loaders.create_loader()
        if directory is not None:
            loader.file_loader = _file_loader(directory)
        moto.core.utils.create_loader = lambda: loader
        moto.utilities.utils.load_resource = _cached_resources(moto.utilities.utils.load_resource, directory)


def _cached_resources(load, directory: Path | None):
    """moto's ``load_resource`` (a package file's JSON, gzipped or not), kept parsed on disk."""
    import moto

    root = Path(moto.__file__).parent

    def load_resource(resource: str):
        source = next((p for p in (root / f"{resource}.gz", root / resource) if p.is_file()), None)
        if directory is None or source is None:
            return load(resource)
        cached = directory / "moto" / (hashlib.sha256(str(source).encode()).hexdigest()[:24] + ".marshal")
        return _through(cached, source, lambda: load(resource))

    load_resource.awslab_shared = True
    return load_resource

"""What the patches share: the constants of the emulated AWS's offering and the helpers that
make moto objects pass through states (``status_property``, ``linger``, ``init_dicts``)."""


from __future__ import annotations

from awslab.local import latency
from awslab.local.side import note, side
from awslab.spec.catalog import DB_ENGINES


def backing_state(obj) -> str | None:
    """'creating' while a real engine behind ``obj`` is still starting (see backing/)."""
    if side(obj).engine_key is None:
        return None
    from awslab.local import backing

    return backing.busy_state(obj)


DB_CLASSES = {f"db.{fam}.{size}" for fam in ("t3", "t4g") for size in ("micro", "small", "medium", "large", "xlarge", "2xlarge")} | {
    f"db.{fam}.{size}" for fam in ("m5", "m6g", "m6i", "m7g", "r5", "r6g", "r6i", "r7g")
    for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")}
# The majors are awslab.spec.catalog's (one fact); the classes and node types above are the exact
# offering the emulated AWS accepts, where the catalog holds only the pattern awslab checks early.
DB_MAJOR_VERSIONS = {engine: facts["versions"] for engine, facts in DB_ENGINES.items()}
# The minor version RDS picks when a request names only the major (EngineVersion "16"): a current
# one per major the catalog offers. Restores and replicas take their source's.
DB_CURRENT_MINORS = {engine: facts["default_minors"] for engine, facts in DB_ENGINES.items()}
CACHE_NODE_TYPES = {f"cache.{fam}.{size}" for fam in ("t3", "t4g") for size in ("micro", "small", "medium")} | {
    f"cache.{fam}.{size}" for fam in ("m5", "m6g", "m7g", "r5", "r6g", "r7g")
    for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")}
REDIS_VERSIONS = ("6.0", "6.2", "7.0", "7.1")


def status_property() -> property:
    """A ``status`` that reports the object's transitional state first (registered by each service
    module as a patch of its class's ``status``, which moto sets per instance: held in its note)."""

    def get(self):
        return latency.phase(self) or backing_state(self) or side(self).status

    def put(self, value):
        note(self, status=value)

    return property(get, put)


def linger(obj, transition: str, final_state: str) -> bool:
    """Keep a deleted resource visible in ``final_state``'s predecessor until its timeline ends."""
    end = latency.start(obj, transition)
    obj.status = final_state
    if end <= latency.now():
        return False
    note(obj, gone_at=end)
    return True


class CaseFoldingExpiringDict(latency.ExpiringDict):
    """An ``ExpiringDict`` whose keys are case-insensitive, for the moto dicts that are
    (RDS identifiers: AWS folds them to lower case, and moto keeps them in a CaseInsensitiveDict).
    Keys are stored folded, so ``dict.values``/``dict.items`` on it still see every entry."""

    def __init__(self, data=()):
        super().__init__()
        self.update(data)

    def __setitem__(self, key, value):
        super().__setitem__(_fold(key), value)

    def __getitem__(self, key):
        return super().__getitem__(_fold(key))

    def __contains__(self, key):
        return super().__contains__(_fold(key))

    def __delitem__(self, key):
        super().__delitem__(_fold(key))

    def get(self, key, default=None):
        return super().get(_fold(key), default)

    def pop(self, key, *default):
        self._purge()
        return super().pop(_fold(key), *default)

    def setdefault(self, key, default=None):
        self._purge()
        return super().setdefault(_fold(key), default)

    def update(self, other=(), **kw):
        items = other.items() if hasattr(other, "items") else other
        for key, value in [*items, *kw.items()]:
            self[key] = value


def _fold(key):
    return key.lower() if isinstance(key, str) else key


def init_dicts(*names: str):
    """A wrapper of a backend's ``__init__`` that makes its dicts ``names`` ExpiringDicts
    (case-insensitive where moto's were); registered as a patch by each service module."""

    def __init__(original, self, *a, **kw):
        from requests.structures import CaseInsensitiveDict

        original(self, *a, **kw)
        for name in names:
            old = getattr(self, name)
            kind = CaseFoldingExpiringDict if isinstance(old, CaseInsensitiveDict) else latency.ExpiringDict
            new = kind(old)
            setattr(self, name, new)
            # moto's RDS finds resources to tag through resource_map, which holds the dict itself:
            # it must hold the new one (else ListTagsForResource / AddTagsToResource see nothing).
            resource_map = getattr(self, "resource_map", None)
            if isinstance(resource_map, dict):
                for kind, resources in list(resource_map.items()):
                    if resources is old:
                        resource_map[kind] = new

    return __init__

"""What RDS's and ElastiCache's hooks share: the server's one ``Backing`` (``current``, set by
``enable``), the revivers that give a restarted server's resources their engines back and the
periodic work each service registers, the resources moto still keeps (``live``), and ``after``,
the wrapper that runs a hook after a moto method."""

from __future__ import annotations

import functools
import logging
import threading
from typing import Callable

from awslab.local.backing.core import Backing
from awslab.local.side import side

log = logging.getLogger("awslab.local.backing")


current: Backing | None = None
revivers: list[Callable[[Backing], set[str]]] = []
periodic: list[Callable[[Backing], None]] = []   # run every PERIODIC_S on the running server
elsewhere: set[str] = set()   # RDS engines whose hooks are not rds.py's (rds_mysql.py adds the MySQL family)
PERIODIC_S = 1.0


def in_cluster(db) -> bool:
    """Whether ``db`` is a Multi-AZ DB cluster's member: its engine is the cluster's
    (rds_cluster.py), never made, revived or restarted as an instance's."""
    return bool(getattr(db, "db_cluster_identifier", None))


def live(backend_dict, attr: str):
    """(region, object) of every resource in ``attr`` of every backend, but those going away."""
    for _, region, backend in backend_dict.iter_backends():
        for obj in list(dict.values(getattr(backend, attr))):
            if side(obj).gone_at is None:
                yield backend, region, obj


def after(cls, method: str, hook: Callable[..., None], inside: threading.local | None = None) -> None:
    """Wrap ``cls.method`` so that ``hook(backend, result, *args)`` runs after it. A hook's failure is
    logged, never raised: the control plane must answer even if an engine cannot start. With
    ``inside``, calls made from within another wrapped call run no hook of their own."""
    orig = getattr(cls, method, None)
    if orig is None:
        return

    @functools.wraps(orig)
    def wrapper(self, *a, **kw):
        outer = getattr(inside, "method", None) if inside is not None else None
        if inside is not None:
            inside.method = outer or method
        try:
            result = orig(self, *a, **kw)
        finally:
            if inside is not None:
                inside.method = outer
        if outer is not None:
            return result
        try:
            hook(self, result, *a, **kw)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("engine hook %s failed", method)
        return result

    setattr(cls, method, wrapper)

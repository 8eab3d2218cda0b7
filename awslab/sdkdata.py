"""botocore's data (service models, endpoints, partitions), parsed once per process.

botocore caches what its loader parses, but per session, and every ``boto3.Session()`` makes a new
one: each Context (every command run in one process: the tests, a class of stacks) parsed the
lab's eight service models again (~0.6 s), and moto builds a session for each region list it
needs (~0.5 s of the local AWS's start). The data is read-only once loaded, so one loader per
data path serves every session of the process.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_loaders: dict = {}


class _PathsOnce(list):
    """Search paths that take each path once: boto3 appends its own at every Session."""

    def append(self, path) -> None:
        if path not in self:
            super().append(path)


def share_across_sessions() -> None:
    """Every botocore session this process makes from now on uses the shared loader."""
    import botocore.loaders
    import botocore.session

    create = botocore.loaders.create_loader

    def shared_loader(search_path_string=None):
        with _lock:
            loader = _loaders.get(search_path_string)
            if loader is None:
                loader = create(search_path_string)
                loader._search_paths = _PathsOnce(loader.search_paths)
                _loaders[search_path_string] = loader
            return loader

    with _lock:
        if getattr(botocore.session.create_loader, "awslab_shared", False):
            return
        shared_loader.awslab_shared = True
        botocore.session.create_loader = shared_loader

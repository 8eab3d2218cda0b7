"""Discovery: what of this stack exists now, found by its tags. Reads only (describe/list/get).

The areas are asked at the same time; each returns ``Found`` values keyed by the resource's
``awslab:resource`` tag. Anything not tagged with the stack is never returned, so never touched.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from awslab.aws import cache, database, host, network, security_groups
from awslab.engine.model import Found
from awslab.engine.run import Run

AREAS = (network.discover, security_groups.discover, host.discover, database.discover, cache.discover)


def discover(run: Run) -> dict[str, Found]:
    with ThreadPoolExecutor(max_workers=len(AREAS), thread_name_prefix="discover") as pool:
        results = list(pool.map(lambda area: area(run), AREAS))
    found: dict[str, Found] = {}
    for items in results:
        for item in items:
            found[item.key] = item
    return found

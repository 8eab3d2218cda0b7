"""Discovery: what of this stack exists now, found by its tags. Reads only (describe/list/get).

The areas of the run's registry of kinds (aws/kinds.py) are asked at the same time; each returns
``Found`` values keyed by the resource's ``awslab:resource`` tag. Anything not tagged with the stack is never returned, so never touched.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from awslab.engine.run import Run
from awslab.spec.model import Found


def discover(run: Run) -> dict[str, Found]:
    areas = run.kinds.areas
    with ThreadPoolExecutor(max_workers=max(1, len(areas)), thread_name_prefix="discover") as pool:
        results = list(pool.map(lambda area: area(run), areas))
    found: dict[str, Found] = {}
    for items in results:
        for item in items:
            found[item.key] = item
    return found

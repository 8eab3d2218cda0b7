"""The Resource Groups Tagging API: one call that lists the ARNs tagged with the stack.

Discovery uses it to confirm ownership of RDS and ElastiCache resources found by name without a
ListTagsForResource call each. The index is eventually consistent (a resource made seconds ago may
be missing), so it is only ever a shortcut: a resource absent from it is checked with the
service's own ListTagsForResource before awslab decides it is not the stack's.
"""

from __future__ import annotations

from typing import Callable

from awslab.engine.run import Run
from awslab.spec.tags import TAG_STACK


def stack_arns(run: Run) -> frozenset[str]:
    """Every ARN in the region tagged awslab:stack=<stack> (computed once per run)."""

    def fetch() -> frozenset[str]:
        arns: set[str] = set()
        pages = run.client("resourcegroupstaggingapi").get_paginator("get_resources").paginate(
            TagFilters=[{"Key": TAG_STACK, "Values": [run.stack]}])
        for page in pages:
            arns.update(r["ResourceARN"] for r in page["ResourceTagMappingList"])
        return frozenset(arns)

    return run.memo("stack-arns", fetch)


def owned(run: Run, arn: str, tags_of: Callable[[str], dict[str, str]]) -> bool:
    """Is ``arn`` this stack's? The tagging index first, the service's own tags when it is not there."""
    if arn in stack_arns(run):
        return True
    return tags_of(arn).get(TAG_STACK) == run.stack

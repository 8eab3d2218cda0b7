"""Tag keys and naming: one place for how awslab marks and names what it owns.

Tags are the source of truth: every resource carries ``awslab:stack`` and ``awslab:lab``, plus
``awslab:resource`` (its key in the lab's topology, e.g. ``network.subnet.public``) so discovery
can map what exists back to the plan without relying on names. Names derive from the stack name
so two stacks of one lab can live in one account.
"""

from __future__ import annotations

import re

TAG_STACK = "awslab:stack"
TAG_LAB = "awslab:lab"
TAG_RESOURCE = "awslab:resource"
# On a restored instance or group: what it was restored from (a snapshot id, or <source>@<time>).
TAG_RESTORED_FROM = "awslab:restored-from"

# The stack's own record, on its VPC: enough to act on the stack from any machine (the lab is on
# every resource; these say how it was built, by whom, when, and until when).
TAG_OVERRIDES = "awslab:overrides"   # the --set list of the last `up`, as JSON
TAG_LAB_FILE = "awslab:lab-file"     # the lab file's path, when not a shipped lab
TAG_OWNER = "awslab:owner"           # the caller's identity at creation, or --owner
TAG_CREATED = "awslab:created"       # RFC 3339, UTC
TAG_EXPIRES = "awslab:expires"       # RFC 3339, UTC; `awslab sweep` removes the stack after it
TAG_CLASS = "awslab:class"           # the class a stack belongs to (`awslab class up`)
# The regions `snapshot --copy-to-region` copied the stack's snapshots to, space-separated, on its
# VPC: where `down` and `snapshots` look for its copies from any machine (the home's record is a cache).
TAG_COPY_REGIONS = "awslab:copy-regions"
STACK_RECORD_TAGS = (TAG_OVERRIDES, TAG_LAB_FILE, TAG_OWNER, TAG_CREATED, TAG_EXPIRES, TAG_CLASS)
TAG_VALUE_MAX = 256   # EC2's limit for a tag value

STACK_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
STACK_NAME_RULE = "1-30 characters: lowercase letters, digits and hyphens, starting with a letter, no '--' and no trailing '-'"


def valid_stack_name(name: str) -> bool:
    # The stack name becomes part of RDS and ElastiCache identifiers, whose rules are the strictest:
    # a letter first, no two consecutive hyphens, no trailing hyphen; ElastiCache allows 40 characters
    # in all, and awslab appends at most 10 ("-cache" plus member suffixes).
    return bool(STACK_NAME_RE.match(name)) and "--" not in name and not name.endswith("-")


def stack_tags(stack: str, lab: str, key: str) -> dict[str, str]:
    """The tags every resource of the stack carries (``key``: its place in the topology)."""
    return {TAG_STACK: stack, TAG_LAB: lab, TAG_RESOURCE: key}


def utc_now_text() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_overrides(overrides: list[str] | tuple[str, ...]) -> str:
    import json

    return json.dumps(list(overrides), separators=(",", ":")) if overrides else ""


def decode_overrides(value: str | None) -> list[str]:
    import json

    try:
        decoded = json.loads(value) if value else []
    except ValueError:
        return []
    return [str(o) for o in decoded] if isinstance(decoded, list) else []


def as_tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def from_tag_list(tag_list: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list or []}


def owned_by(tags: dict[str, str], stack: str) -> bool:
    return tags.get(TAG_STACK) == stack


def origin_tags(d) -> list[dict[str, str]]:
    """The restored-from tag of a restore's desired resource (none for anything else)."""
    origin = d.spec.get("origin") if isinstance(d.spec, dict) else None
    return [{"Key": TAG_RESTORED_FROM, "Value": origin}] if origin else []

"""IAM: AWS's answers where moto crashes, action names as IAM knows them, managed policies parsed once.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

from awslab.local.patches._patch import patch

IAM_BACKEND = "moto.iam.models:IAMBackend"


@patch(IAM_BACKEND, gap="iam-remove-role-not-in-profile", phase="answers")
def remove_role_from_instance_profile(original, self, profile_name, role_name):
    """Removing a role an instance profile does not hold is NoSuchEntity on AWS (moto: a crash)."""
    from moto.iam.exceptions import NoSuchEntity

    profile = self.get_instance_profile(profile_name)
    if not any(r.name == role_name for r in profile.roles):
        raise NoSuchEntity(f"The role with name {role_name} cannot be found in instance profile {profile_name}.")
    return original(self, profile_name, role_name)


_parsed: list = []   # the managed policies, parsed once; never handed out: each backend gets copies


@patch(IAM_BACKEND, "_init_aws_policies", gap="iam-managed-policies", phase="answers")
def managed_policies(original, self):
    """Speed, not a gap: AWS's ~1,580 managed policies parsed once per process, in one partition.

    moto builds an IAM backend for every account it sees and again at every reset (moto's own tests:
    twice per test), each time parsing the policies from JSON (~70 ms each). They are parsed once
    here, for the ``aws`` partition only (the first request that names an access key makes moto
    build a backend for each of its six partitions; the local AWS serves ``aws``), and every
    backend gets its own copies of what an account can change in them (attachment counts, versions
    and their default flag, tags), so no two backends share state. The copies stay
    ``AWSManagedPolicy`` objects: persistence saves them by reference (``persistence._Pickler``).
    (The managed policies themselves are loaded because the server sets
    ``MOTO_IAM_LOAD_MANAGED_POLICIES``: ``apply()``.)"""
    from moto.settings import load_iam_aws_managed_policies

    if self.region_name != "aws" or not load_iam_aws_managed_policies():
        return []
    if not _parsed:
        _parsed[:] = original(self)   # replaced whole: two first backends at once leave one list
    return [_own_copy(policy, self.account_id) for policy in _parsed]


def _own_copy(policy, account_id: str):
    """A managed policy with its own mutable state (moto's Policy: ``attachment_count``,
    ``versions``, ``tags``, ``default_version_id``; the rest is immutable and shared)."""
    copy = object.__new__(type(policy))
    copy.__dict__.update(policy.__dict__)
    copy.account_id = account_id
    copy.attachment_count = 0
    copy.tags = {key: dict(tag) for key, tag in policy.tags.items()}
    copy.versions = []
    for version in policy.versions:
        own = object.__new__(type(version))
        own.__dict__.update(version.__dict__)
        copy.versions.append(own)
    return copy


# With IAM enforcement on, moto names an action by the request's signing name; AWS's IAM prefix
# differs for the tagging API (`tag:`), so a real policy would be refused locally.
ACTION_PREFIXES = {"tagging": "tag"}


@patch("moto.iam.access_control:IAMPolicyStatement", gap="iam-action-level", phase="answers")
def is_action_permitted(original, self, action, resource="*", principal=None, incoming_condition_values=None):
    """moto knows neither the resource a request touches (it passes "*") nor most condition keys, so
    a least-privilege statement (resource ARNs, tag conditions) never matched and everything was
    denied. The local AWS checks identity policies at the action level only, as MOTO-GAPS says it
    can: an Allow or Deny whose actions match decides, whatever its Resource and Condition.
    Resource scoping and conditions are checked statically (parliament), not here."""
    from moto.iam.access_control import PermissionResult

    if principal is not None or resource != "*" or "Action" not in self._statement:
        return original(self, action, resource, principal, incoming_condition_values)
    if not self._check_element_matches("Action", action):
        return PermissionResult.NEUTRAL
    return PermissionResult.PERMITTED if self._statement["Effect"] == "Allow" else PermissionResult.DENIED


@patch("moto.iam.access_control:IAMRequestBase", "__init__", gap="iam-tagging-action", phase="answers")
def request_init(original, self, *a, **kw):
    original(self, *a, **kw)
    service, _, action = self._action.partition(":")
    if service in ACTION_PREFIXES:
        self._action = f"{ACTION_PREFIXES[service]}:{action}"

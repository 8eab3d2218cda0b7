"""IAM: AWS's answers where moto crashes, action names as IAM knows them, managed policies parsed once.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close)."""

from __future__ import annotations

import threading

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
_copying = threading.Lock()


class _Deferred:
    """What an IAM backend holds for AWS's managed policies until something reads them: most
    backends never do (moto makes one for every account a request names, and again at every reset;
    moto's own tests reset twice per test), and copying ~1,580 policies is ~20 ms each time."""

    __slots__ = ("account_id",)

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id

    def __reduce__(self):   # saved as it is: a backend loaded from the state copies on first read
        return _Deferred, (self.account_id,)


@patch(IAM_BACKEND, "_init_aws_policies", gap="iam-managed-policies", phase="answers")
def managed_policies(original, self):
    """Speed, not a gap: AWS's ~1,580 managed policies parsed once per process, in one partition,
    and copied into a backend only when it first reads them.

    moto builds an IAM backend for every account it sees and again at every reset (moto's own tests:
    twice per test), each time parsing the policies from JSON (~70 ms each). They are parsed once
    here, for the ``aws`` partition only (the first request that names an access key makes moto
    build a backend for each of its six partitions; the local AWS serves ``aws``), and every
    backend gets its own copies of what an account can change in them (attachment counts, versions
    and their default flag, tags), so no two backends share state. The copies are made when the
    backend's ``managed_policies`` (or ``aws_managed_policies``) is first read (``_policies_of``):
    nothing can hold one of a backend's policies before that. The copies stay
    ``AWSManagedPolicy`` objects: persistence saves them by reference (``persistence._Pickler``).
    (The managed policies themselves are loaded because the server sets
    ``MOTO_IAM_LOAD_MANAGED_POLICIES``: ``apply()``.)"""
    from moto.settings import load_iam_aws_managed_policies

    if self.region_name != "aws" or not load_iam_aws_managed_policies():
        return []
    if not _parsed:
        _parsed[:] = original(self)   # replaced whole: two first backends at once leave one list
    return _Deferred(self.account_id)


@patch(IAM_BACKEND, "_init_managed_policies", gap="iam-managed-policies", phase="answers")
def managed_policies_by_arn(original, self):
    deferred = self.__dict__.get("aws_managed_policies")
    return deferred if isinstance(deferred, _Deferred) else original(self)


def _policies_of(backend, name: str):
    """``backend.<name>`` (``managed_policies`` or ``aws_managed_policies``), its copies made now if
    they were deferred."""
    value = backend.__dict__.get(name)
    if isinstance(value, _Deferred):
        with _copying:
            value = backend.__dict__.get(name)
            if isinstance(value, _Deferred):
                copies = [_own_copy(policy, value.account_id) for policy in _parsed]
                by_arn = {policy.arn: policy for policy in copies}
                # Both names are the same copies, as moto's own __init__ makes them.
                if isinstance(backend.__dict__.get("aws_managed_policies"), _Deferred):
                    backend.__dict__["aws_managed_policies"] = copies
                if isinstance(backend.__dict__.get("managed_policies"), _Deferred):
                    backend.__dict__["managed_policies"] = by_arn
                value = backend.__dict__[name]
    if value is None and name not in backend.__dict__:
        raise AttributeError(name)
    return value


def _deferred_attribute(name: str) -> property:
    def get(self):
        return _policies_of(self, name)

    def set_(self, value) -> None:
        self.__dict__[name] = value

    return property(get, set_, doc=f"moto's ``{name}``, AWS's policies copied on first read (``_Deferred``)")


patch(IAM_BACKEND, "managed_policies", gap="iam-managed-policies", phase="answers", kind="add")(
    _deferred_attribute("managed_policies"))
patch(IAM_BACKEND, "aws_managed_policies", gap="iam-managed-policies", phase="answers", kind="add")(
    _deferred_attribute("aws_managed_policies"))


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

"""IAM: AWS's answers where moto crashes, action names as IAM knows them, managed policies loaded once.

Part of awslab's layer over moto (the table of gaps is in ``awslab.local.patches``)."""

from __future__ import annotations

import functools


def answers() -> None:
    """Removing a role an instance profile does not hold is NoSuchEntity on AWS (moto: a crash)."""
    from moto.iam.exceptions import NoSuchEntity
    from moto.iam.models import IAMBackend

    orig = IAMBackend.remove_role_from_instance_profile

    @functools.wraps(orig)
    def remove_role_from_instance_profile(self, profile_name, role_name):
        profile = self.get_instance_profile(profile_name)
        if not any(r.name == role_name for r in profile.roles):
            raise NoSuchEntity(f"The role with name {role_name} cannot be found in instance profile {profile_name}.")
        return orig(self, profile_name, role_name)

    IAMBackend.remove_role_from_instance_profile = remove_role_from_instance_profile


def managed_policies_in_one_partition() -> None:
    """Start-up speed, not a gap: the first request that names an access key makes moto build an
    IAM backend for each of its six partitions, each parsing AWS's ~1,300 managed policies (about
    0.7 s of the local AWS's start). The local AWS serves the ``aws`` partition only; the others
    start without them."""
    from moto.iam.models import IAMBackend

    orig = IAMBackend._init_aws_policies

    @functools.wraps(orig)
    def _init_aws_policies(self):
        return orig(self) if self.region_name == "aws" else []

    IAMBackend._init_aws_policies = _init_aws_policies


def action_names() -> None:
    """With IAM enforcement on, moto names an action by the request's signing name; AWS's IAM
    prefix differs for the tagging API (`tag:`), so a real policy would be refused locally.

    moto knows neither the resource a request touches (it passes "*") nor most condition keys, so
    a least-privilege statement (resource ARNs, tag conditions) never matched and everything was
    denied. The local AWS checks identity policies at the action level only, as MOTO-GAPS says it
    can: an Allow or Deny whose actions match decides, whatever its Resource and Condition.
    Resource scoping and conditions are checked statically (parliament), not here."""
    from moto.iam.access_control import (
        IAMPolicyStatement,
        IAMRequestBase,
        PermissionResult,
    )

    orig_permitted = IAMPolicyStatement.is_action_permitted

    @functools.wraps(orig_permitted)
    def is_action_permitted(self, action, resource="*", principal=None, incoming_condition_values=None):
        if principal is not None or resource != "*" or "Action" not in self._statement:
            return orig_permitted(self, action, resource, principal, incoming_condition_values)
        if not self._check_element_matches("Action", action):
            return PermissionResult.NEUTRAL
        return PermissionResult.PERMITTED if self._statement["Effect"] == "Allow" else PermissionResult.DENIED

    IAMPolicyStatement.is_action_permitted = is_action_permitted

    prefixes = {"tagging": "tag"}
    orig = IAMRequestBase.__init__

    @functools.wraps(orig)
    def __init__(self, *a, **kw):
        orig(self, *a, **kw)
        service, _, action = self._action.partition(":")
        if service in prefixes:
            self._action = f"{prefixes[service]}:{action}"

    IAMRequestBase.__init__ = __init__

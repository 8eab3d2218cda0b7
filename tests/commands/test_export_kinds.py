"""The template is assembled from the registry (commands/export.py): a kind's CloudFormation form is
its handler's ``export`` capability, written where the registry lists the kind."""

from __future__ import annotations

import pytest

from awslab.aws.kinds import KINDS
from awslab.commands.export import template
from awslab.spec import cfn
from awslab.spec.lab import load_lab
from awslab.spec.model import Kinds


class _Bucket:
    kind = "bucket"
    capabilities = frozenset({"export"})

    def __init__(self, logical: str = "Bucket") -> None:
        self.logical = logical

    def create(self, run, d):
        raise NotImplementedError

    def delete(self, run, f):
        raise NotImplementedError

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        return cfn.Export({self.logical: {"Type": "AWS::S3::Bucket", "Properties": {
            "BucketName": cfn.sub(f"{cfn.STACK}-notes"), "Tags": cfn.tags("bucket", x.lab)}}},
            {"BucketName": {"Value": cfn.ref(self.logical)}})


def _with(*extra) -> Kinds:
    return Kinds([*(KINDS[k] for k in KINDS), *extra])


def test_a_new_kind__is_in_the_template_at_its_place_in_the_registry_with_its_outputs():
    tpl = template(load_lab("week6"), "s1", kinds=_with(_Bucket()))
    assert list(tpl["Resources"])[-1] == "Bucket"
    assert tpl["Resources"]["Bucket"]["Properties"]["BucketName"] == {"Fn::Sub": "${StackName}-notes"}
    # The endpoints a learner connects with first, the host's id last.
    assert list(tpl["Outputs"])[-2:] == ["BucketName", "HostInstanceId"]


def test_two_kinds_writing_one_logical_id__are_refused():
    with pytest.raises(ValueError, match="Host"):
        template(load_lab("week6"), "s1", kinds=_with(_Bucket("Host")))


def test_the_restores__write_nothing_of_their_own():
    exporting = {k for k in KINDS if KINDS.can(k, "export")}
    assert not {k for k in exporting if "restore" in k or "snapshot" in k}
    assert {"vpc", "db-instance", "db-cluster", "replication-group"} <= exporting

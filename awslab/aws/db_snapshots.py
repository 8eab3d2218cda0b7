"""RDS's DB snapshots: the stack's manual and final snapshots (copies in other regions too) and its
instances' automated backups, found by tags; a manual snapshot and a copy in another region as
resource kinds. The restores made from them are DB instances (database.DbRestore)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from awslab.aws._common import snapshot_ready
from awslab.aws.database import tags_of
from awslab.engine.run import Run, create_or_adopt
from awslab.engine.waiting import GONE, error_code, ignoring, unless_missing
from awslab.spec import pricing
from awslab.spec.model import Desired, Found
from awslab.spec.tags import from_tag_list, owned_by


SNAPSHOT_FAILED = {"failed", "incompatible-restore", GONE}


def _snapshot_attrs(snap: dict, region: str) -> dict:
    return {"raw": snap, "region": region, "type": snap.get("SnapshotType"), "size_gib": snap.get("AllocatedStorage"),
            "instance": snap.get("DBInstanceIdentifier"), "encrypted": snap.get("Encrypted"), "arn": snap.get("DBSnapshotArn")}


def discover_snapshots(run: Run, regions: list[str], instances: list[str]) -> list[Found]:
    """The stack's DB snapshots: manual and final ones (tagged, copies too) in each region, and the
    automated backups of the stack's instances."""
    out: list[Found] = []
    for region in regions:
        rds = run.ctx.client("rds", region)
        for page in rds.get_paginator("describe_db_snapshots").paginate(SnapshotType="manual"):
            for snap in page["DBSnapshots"]:
                if owned_by(from_tag_list(snap.get("TagList")), run.stack):
                    out.append(Found(f"snapshot.db.{region}.{snap['DBSnapshotIdentifier']}", "db-snapshot",
                                     snap["DBSnapshotIdentifier"], snap["Status"], created=snap.get("SnapshotCreateTime"),
                                     attrs=_snapshot_attrs(snap, region)))
    rds = run.client("rds")
    for ident in instances:
        for snap in rds.describe_db_snapshots(DBInstanceIdentifier=ident, SnapshotType="automated")["DBSnapshots"]:
            out.append(Found(f"snapshot.db.{run.ctx.region}.{snap['DBSnapshotIdentifier']}", "db-snapshot",
                             snap["DBSnapshotIdentifier"], snap["Status"], created=snap.get("SnapshotCreateTime"),
                             attrs=_snapshot_attrs(snap, run.ctx.region)))
    return out


def find_snapshot(run: Run, snapshot_id: str) -> dict | None:
    return unless_missing(lambda: run.client("rds").describe_db_snapshots(DBSnapshotIdentifier=snapshot_id)["DBSnapshots"][0],
                          "DBSnapshotNotFound", "DBSnapshotNotFoundFault", "InvalidParameterValue")


def snapshot_tags(run: Run, snap: dict) -> dict[str, str]:
    tags = from_tag_list(snap.get("TagList"))
    return tags or tags_of(run, snap["DBSnapshotArn"])


class DbSnapshot:
    """A manual snapshot of the primary, tagged with the stack."""

    kind = "db-snapshot"
    capabilities = frozenset({"cost", "ready"})

    def estimate(self, d: Desired, region: str) -> list[pricing.Line]:
        return []   # its size is known once it is taken: then ``priced``

    def priced(self, f: Found, region: str) -> list[pricing.Line]:
        return [pricing.snapshot_line(f"RDS snapshot {f.id}", "db", f.get("size_gib"), f.get("region") or region)]

    def create(self, run: Run, d: Desired) -> Found:
        rds = run.client("rds")
        snap = create_or_adopt(
            run, f"DB snapshot {d.name}",
            lambda: rds.create_db_snapshot(DBInstanceIdentifier=d.spec["instance"], DBSnapshotIdentifier=d.name,
                                           Tags=run.tag_list(d.key))["DBSnapshot"],
            "DBSnapshotAlreadyExists",
            lambda: rds.describe_db_snapshots(DBSnapshotIdentifier=d.name)["DBSnapshots"][0],
            lambda snap: snapshot_tags(run, snap))
        return self.ready(run, d, Found(d.key, self.kind, d.name, snap["Status"], attrs=_snapshot_attrs(snap, run.ctx.region)))

    def ready(self, run: Run, d: Desired | None, f: Found) -> Found:
        region = f.get("region") or run.ctx.region
        rds = run.ctx.client("rds", region)
        return snapshot_ready(run, f, f"DB snapshot {f.id}",
                              lambda: rds.describe_db_snapshots(DBSnapshotIdentifier=f.id)["DBSnapshots"][0], "Status",
                              {"DBSnapshotNotFound", "DBSnapshotNotFoundFault"}, SNAPSHOT_FAILED,
                              lambda snap: _snapshot_attrs(snap, region))

    def delete(self, run: Run, f: Found) -> None:
        with ignoring("DBSnapshotNotFound", "DBSnapshotNotFoundFault"):
            run.ctx.client("rds", f.get("region") or run.ctx.region).delete_db_snapshot(DBSnapshotIdentifier=f.id)


class DbSnapshotCopy(DbSnapshot):
    """A copy in another region, made from that region with the source ARN (as AWS requires)."""

    kind = "db-snapshot-copy"
    capabilities = frozenset({"cost", "ready"})

    def create(self, run: Run, d: Desired) -> Found:
        region = d.spec["region"]
        source = run.ref(d.spec["source_key"])
        rds = run.ctx.client("rds", region)
        args = {"SourceDBSnapshotIdentifier": source.get("arn"), "TargetDBSnapshotIdentifier": d.name,
                "SourceRegion": run.ctx.region, "Tags": run.tag_list(d.key), "CopyTags": False}
        if source.get("encrypted"):
            # An encrypted snapshot needs a key in the destination region: the user's, or RDS's default there.
            args["KmsKeyId"] = d.spec.get("kms_key") or "alias/aws/rds"
        try:
            snap = rds.copy_db_snapshot(**args)["DBSnapshot"]
        except ClientError as exc:
            if error_code(exc) != "DBSnapshotAlreadyExists":
                raise
            snap = rds.describe_db_snapshots(DBSnapshotIdentifier=d.name)["DBSnapshots"][0]
        found = Found(d.key, self.kind, d.name, snap["Status"], attrs=_snapshot_attrs(snap, region))
        return self.ready(run, d, found)

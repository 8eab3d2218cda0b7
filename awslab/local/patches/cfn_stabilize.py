"""CloudFormation: a stack is CREATE_COMPLETE once every resource in it is stabilized, as on AWS.

moto's CloudFormation marks a stack CREATE_COMPLETE when its create calls return, while the DB
instances, the replication group and the EC2 instance it made are still `creating`/`pending`; a
learner's `aws cloudformation wait stack-create-complete` then returned before the database could
be reached. CloudFormation waits for each resource to stabilize (an RDS instance `available`, an
ElastiCache group `available`, an EC2 instance `running`). Here each of those reports whether it
is created (moto's own ``is_created`` hook), and the stack reads CREATE_IN_PROGRESS until all are,
then CREATE_COMPLETE (with its event), the moment a describe sees it.

Part of awslab's layer over moto (the table of gaps is in ``awslab.local.patches``).
"""

from __future__ import annotations

# A resource still on its way; anything else (available, running, or a failure) has settled.
SETTLING = {"creating", "pending", "backing-up", "modifying", "configuring-enhanced-monitoring",
            "configuring-log-exports", "rebooting"}


def apply() -> None:
    from moto.cloudformation.models import Stack
    from moto.ec2.models.instances import Instance
    from moto.rds.models import DBInstance

    from awslab.local.patches.cloudformation import ReplicationGroup

    DBInstance.is_created = lambda self: self.status not in SETTLING
    ReplicationGroup.is_created = lambda self: (self.status or "available") not in SETTLING
    Instance.is_created = lambda self: self.state not in SETTLING

    orig_create = Stack.create_resources

    def create_resources(self) -> None:
        orig_create(self)
        self._awslab_calls_done = True   # every create call returned: only stabilizing is left

    Stack.create_resources = create_resources

    def get(self):
        status = self.__dict__.get("_awslab_status", self.__dict__.get("status"))
        # Not while the create calls run, nor after one failed (the stack is rolled back then).
        if status == "CREATE_IN_PROGRESS" and self.__dict__.get("_awslab_calls_done"):
            try:
                done = self.resource_map.creation_complete()
            except Exception:  # noqa: BLE001 - a resource that cannot say is taken as settled
                done = True
            if done:
                self.mark_creation_complete()
                status = self.__dict__["_awslab_status"]
        return status

    def put(self, value):
        self.__dict__["_awslab_status"] = value

    Stack.status = property(get, put)

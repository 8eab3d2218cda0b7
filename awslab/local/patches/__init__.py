"""awslab's layer over moto: make the local AWS behave like AWS where it matters to the lab.

One module per service (``rds``, ``elasticache``, ``ec2``, ``iam``, ``cloudformation``, ``tagging``), their shared helpers and the
emulated offering in ``_base``; ``apply()`` below applies them in a fixed order.

Loaded by the local server process (``awslab.local.server``) and so by the test fixtures, never by
the CLI itself (the CLI starts quickly). Pinned to the moto version range in pyproject.toml: the
patches wrap moto's backends by method name. Durations come from ``latency.py``.

moto's own tests are the layer's regression test: ``.ci/conformance`` runs them on plain moto and
with ``apply()``, and every difference is fixed or explained in tests/conformance/DIFFERENCES.md.

Every row of shared/MOTO-GAPS.md, and what the local AWS does about it:

| MOTO-GAPS row | status |
|---|---|
| RDS `available` at once; never `creating`/`backing-up`/`modifying`/`rebooting` | closed: `rds.states` (latency profile) |
| DB snapshot `available` at once | closed: `rds.states` |
| ElastiCache group `available` at once | closed: `elasticache.states` |
| EC2 `running` on first describe | closed: `ec2.states` (`pending` first) |
| `delete_db_instance` removes the instance at once | closed: `rds.states` (`deleting`, then gone) |
| ElastiCache deletes never finish, id never freed | closed: `elasticache.states` (`deleting`, then gone, id free; under `instant` a cache cluster still answers `deleting` to the first describe) |
| state manager knows no RDS/ElastiCache/EC2 model | closed: awslab's own timelines replace it |
| `delete_cache_subnet_group` not implemented | closed: `elasticache.subnet_group_delete` (refused while in use) |
| `elasticache.test_failover` not implemented | closed: `elasticache.failover` (the replica becomes primary) |
| (found here) a point-in-time restore comes back as a read replica of its source | closed: `rds.answers` |
| network insights, SSM run command (no-op), pricing | SSM closed: `ssm` (SendCommand runs AWS-RunShellScript for real on the instance, local/instances.py; real output, exit code and statuses; ListCommandInvocations, CancelCommand, DescribeInstanceInformation); network insights and pricing left: awslab does not call them |
| (found here) security groups, subnets and routes decide nothing: every endpoint answers anyone | closed outside the patches: `local/network.py` (each connection's source and the VPC's verdict, the evaluator verify uses; dropped connections held until the client times out; VPC Flow Logs records) |
| (found here) the default VPC has no internet gateway and no route to one | partly closed: `local/network.py` routes the default VPC to the internet as AWS's has it; the describes still show none (adding one would change moto's own answers) |
| `reboot_db_instance(ForceFailover=True)` a no-op, accepted on Single-AZ | closed: `rds.answers` (AZs swap, `rebooting` for `rds.failover`; Single-AZ refused); with engines on, `backing.py` crashes the primary, promotes the synchronous standby behind the same endpoint address (open connections dropped) and builds a new standby |
| no `SecondaryAvailabilityZone` | closed: `rds.answers` (the other AZ of the subnet group) |
| `KmsKeyId` is a literal | closed: `rds.answers` (an encrypted instance given no key shows the ARN of the region's aws/rds key, moto's KMS's own; its replicas, snapshots and restores take it; Aurora members keep their cluster's) |
| `create_cache_cluster` without endpoints | closed: `elasticache.members` (a group's members show their node and its endpoint with `ShowCacheNodeInfo`) and `elasticache.standalone` (a cluster of its own: its node's endpoint, a real Redis behind it, `backing.py`) |
| cache cluster `SecurityGroups` not echoed, `CacheSecurityGroups` absent | closed: `elasticache.members` |
| replication group of 2 yields 1 member; members not visible as cache clusters | closed: `elasticache.members` (N members, each a cache cluster with the group's security groups; `ModifyReplicationGroup` takes `SecurityGroupIds`) |
| `/moto-api/data.json` fails with RDS | left: awslab does not use it |
| IAM managed policies not loaded | closed: the server sets `MOTO_IAM_LOAD_MANAGED_POLICIES` (`iam.managed_policies`: parsed once per process, each backend given its own copies) |
| unknown AMI/class/version, short password, bad group accepted | partly closed: `rds.rejects` and `elasticache.rejects` refuse unknown DB classes, node types and engine versions (tables above); AMIs, passwords and groups left (awslab resolves the AMI from SSM, lets RDS manage the password, and passes only groups it made) |
| `MasterUserPassword` with `ManageMasterUserPassword` accepted | closed: `rds.rejects` |
| delete without a final-snapshot choice accepted | closed: `rds.states` (its delete wrapper) |
| final snapshot id on a read replica accepted | closed: `rds.states` (its delete wrapper) |
| in-use DB subnet group deletable | closed: `ec2.in_use_deletes` (`InvalidDBSubnetGroupStateFault`) |
| in-use security group deletable | closed: `ec2.in_use_deletes` (`DependencyViolation`, ENIs drain after termination) |
| subnet with an instance deletable | closed: `ec2.in_use_deletes` |
| `AuthToken` without transit encryption accepted | closed: `elasticache.rejects` |
| `DescribePendingMaintenanceActions` / `ApplyPendingMaintenanceAction` (HTML 500) | closed: `maintenance` (pending `system-update` offered by the owner, applied for real by `backing.py`: Single-AZ restarts, Multi-AZ patches the standby, fails over, patches the old primary) |
| no cache parameter groups (Create/Describe/Modify/Reset/Delete, `DescribeCacheParameters`, a group's or cluster's `CacheParameterGroup`) | closed: `cache_parameters` (the default group per family, the Redis parameters awslab applies to the real servers, AWS's refusals; `backing.py` sets them with CONFIG SET) |
| cache cluster without a subnet group | left: awslab always gives one |
| restores ignore `False` overrides | closed: `rds.answers` |
| (found here) `modify_db_subnet_group` makes the group vanish | closed: `rds.answers` |
| (found here) `create_db_subnet_group` silently replaces an existing group | closed: `rds.answers` (`DBSubnetGroupAlreadyExists`) |
| (found here) the tagging API leaves out DB subnet groups | closed: `rds.answers` |
| restore time unused | closed with engines on (`backing.py`): a point-in-time restore replays the source's WAL archive from its newest base backup up to the time asked; `LatestRestorableTime` and the automated backups' `RestoreWindow` say what the archive covers, and a time outside it is refused (`InvalidRestoreFault`); without engines, left |
| (found later) deleting a source leaves its read replicas pointing at it; their own delete then fails half-way (`DBInstanceNotFound` for the source) | closed: `rds.states` (the replicas are promoted to standalone, as AWS does; with engines on their servers too) |
| (found later) `CreateDBInstanceReadReplica` under an identifier in use replaces that instance | closed: `rds.states` (`DBInstanceAlreadyExists`, on the request) |
| (found later) `PromoteReadReplica` accepts an instance that is not a replica and leaves the promoted one in its source's replica list | closed: `rds.answers` (`InvalidDBInstanceState`; detached; `modifying`/`rebooting` for `rds.promote`); with engines on the replica's server is promoted and keeps its own backups |
| replica shares and deletes the primary's secret | closed: `rds.states` (a replica's delete leaves it) |
| the tagging API's action checked as `tagging:GetResources` | closed: `iam.action_names` (AWS's action is `tag:GetResources`) |
| (found here) enforcement matches statements' resources and conditions against values moto does not have, denying least-privilege policies | closed: `iam.action_names` (action level, as MOTO-GAPS describes) |
| terminated instances listed forever | closed: `ec2.states` (listed as `terminated`, with their tags, for AWS's hour times the profile's time scale, under `instant` too, then gone; the tagging API leaves them out; awslab's discovery ignores them) |
| (found here) an RDS-managed master secret holds user `admin` and a fixed password | closed: `rds.answers` (the master user name and a random password, as AWS) |
| (found here) `RemoveRoleFromInstanceProfile` of a role the profile does not hold: HTTP 500 | closed: `iam.answers` (`NoSuchEntity`) |
| (found here) `ClientToken` of `RunInstances` and `CreateRouteTable` ignored: a retried create makes a second one | closed: `ec2.client_tokens` (the same token returns the first result) |
| (found later) revoking a rule needs its Description | closed: `ec2.rule_matching` (protocol, ports and source, as AWS) |
| (found later) an instance launched with a network interface shows `SecurityGroups: []` | closed: `ec2.instance_groups` (the primary interface's groups) |
| (found later) RDS tag calls on DB instances see nothing (the layer's `databases` dict was not the one `resource_map` held) | closed: `_base.wrap_init_dicts` keeps `resource_map` on the new dict |
| (found later) an instance created without a version gets a retired one (9.3.3), so its snapshot cannot be restored | closed: `rds.rejects` (a current default, `DEFAULT_VERSIONS`) |
| (found here) the server accepts any credentials and any signature | closed outside the patches: `local/auth.py` (SigV4 checked against the home's keys and local IAM users') |
| (found here) the server keeps its state in memory only: a stop or crash loses every resource | closed outside the patches: `local/persistence.py` (saved after each change, loaded at start) |
| (found here) `ModifyDBInstance` applies at once, never `modifying` | closed: `rds.states` (`rds.modify` on the latency profile) |
| (found here) no `IncreaseReplicaCount` / `DecreaseReplicaCount` | left: `up` shows a changed cache replica count as `replace` |
| (conformance run) DB identifiers case-sensitive: the layer's `databases` dict dropped moto's case-insensitive one | closed: `_base.wrap_init_dicts` (a case-folding dict where moto's was case-insensitive) |
| (conformance run) a protected instance's delete refused for its final-snapshot choice first | closed: `rds.states` (deletion protection first, as AWS) |
| (conformance run) the final-snapshot rule also refused an Aurora member's delete and the deletes CloudFormation and blue/green deployments make | closed: `rds.states` (the rule is checked on the DeleteDBInstance request, in moto's response handler, and asks nothing of a cluster member) |
| (conformance run) a CloudFormation instance's unset backup retention (AWS: 1 day) refused its replica | closed: `rds.states` (CloudFormation's default of 1) |
| (conformance run) a cluster member's version checked before its engine | closed: `rds.rejects` (the engine mismatch first, as AWS) |
| (AWS CLI smoke) `EngineVersion` shown as asked (`16`), and a default parameter group `default.postgres` | closed: `rds.rejects` (a major becomes its current minor, `_base.DB_CURRENT_MINORS`; replicas, snapshots and restores keep their source's) |
| (AWS CLI smoke) a read replica without `StatusInfos` | closed: `rds.answers` (`read replication`, `replicating`) |
| (AWS CLI smoke) a group's node group without `ReaderEndpoint`; members with `AuthTokenEnabled` false and no `AtRestEncryptionEnabled` | closed: `elasticache.members` (the reader endpoint from the address moto keeps, which `backing.py` publishes; the members' settings as their group's) |
| (AWS CLI smoke) a cache snapshot without `NodeSnapshots` | closed: `elasticache.answers` (one per node group, from a replica where there is one) |
| (CloudFormation export) no `AWS::SecretsManager::Secret`, `AWS::ElastiCache::SubnetGroup`, `AWS::ElastiCache::ReplicationGroup`, `AWS::EC2::SecurityGroupEgress`; no `{{resolve:secretsmanager:...}}` | closed: `cloudformation` (each made by its API's backend call; the dynamic reference resolved) |
| (CloudFormation export) `AWS::RDS::DBInstance` drops `VPCSecurityGroups`, `ManageMasterUserPassword`, `DeletionProtection`, takes MySQL's port, makes a replica before its source is available, has no `MasterUserSecret.SecretArn` | closed: `cloudformation` (the properties read as CreateDBInstance's parameters; the replica waits, bounded, as CloudFormation does) |
| (CloudFormation export) `AWS::EC2::Instance` ignores `NetworkInterfaces` and its launch template; gateways and route tables lose `Tags`; a subnet association is not on its route table | closed: `cloudformation` (RunInstances' parameters; tags kept; AssociateRouteTable) |
| (StackSets) operations run inside the request and always `SUCCEEDED`; `OperationPreferences`, `RetainStacks` and the self-managed roles ignored; instances' stacks named `StackSet:<name>`, every instance `CURRENT` | closed: `stacksets` (operations run by a worker within the preferences, a result per account, roles checked, `StackSet-<name>-<uuid>` stacks, instance statuses as AWS shows them) |
| (StackSets) two accounts' DB instances share one endpoint address and one engine | closed: `rds.answers` (an address per account and region) and `backing.py` (engines keyed by account too) |
| (found here) the tagging API keeps every pagination token's generator forever: after a listing longer than a page no save of the local AWS succeeded | closed: `tagging.pages` (the last page frees its token, tokens expire after AWS's 15 minutes, none is saved) |
| (Ansible's second run) every DB instance has one `DbiResourceId`; a gp3 instance shows no `Iops`/`StorageThroughput`; a read replica has its source's creation time and backups; CA `rds-ca-default`, no `CertificateDetails`; `DescribeCertificates` answers HTTP 500 | closed: `rds.instance_fields` (an id of its own, gp3's baseline 3,000 IOPS and 125 MiB/s below 400 GiB, 12,000 and 500 from it; a replica's own time and backups off unless asked, 1 day on promotion; `rds-ca-rsa2048-g1` with its validity; the three RDS CAs) |
| (found here) a stack is `CREATE_COMPLETE` while its DB instances, cache and EC2 instance are still being made | closed: `cfn_lifecycle` (CREATE_IN_PROGRESS until each is available/running, as CloudFormation waits for them) |
| (found here) the short form `!GetAtt Cache.PrimaryEndPoint.Address` split at every dot, after which every DescribeStacks of the stack failed | closed: `cfn_getatt` (split at the first dot, in the short and the string forms, as CloudFormation) |
| (found here) `DeleteStack` deletes inside the request in no order, fails at the first dependency (`InvalidDBSubnetGroupStateFault`) and drops the stack record, leaving its resources | closed: `cfn_lifecycle` (answered at once; a worker deletes the read replicas first, then the rest pass after pass within a bound; the stack listed `DELETE_IN_PROGRESS` until done, `DELETE_FAILED` with why if it cannot) |
| (StackSets) `DeletionPolicy: Snapshot` ignored: a stack's delete removes its DB without a final snapshot | closed: `cloudformation` (a final snapshot named as CloudFormation names it) |
"""

from __future__ import annotations

import os

from awslab.local.patches import (
    cache_parameters,
    cfn_getatt,
    cfn_lifecycle,
    cloudformation,
    ec2,
    elasticache,
    iam,
    maintenance,
    rds,
    ssm,
    stacksets,
    tagging,
)

_applied = False


def apply() -> None:
    """Apply every patch once (idempotent). Must run before the first request is served."""
    global _applied
    if _applied:
        return
    # moto reads this when its IAM backend is first created; AWS always has the managed policies.
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    rds.states()
    rds.rejects()
    rds.answers()
    rds.managed_secret()
    rds.instance_fields()
    elasticache.members()
    elasticache.standalone()
    elasticache.states()
    elasticache.failover()
    elasticache.rejects()
    elasticache.subnet_group_delete()
    elasticache.answers()
    cache_parameters.apply()   # after elasticache's: its wrappers see the members made
    maintenance.apply()
    ec2.states()
    ec2.client_tokens()
    ec2.in_use_deletes()
    ec2.rule_matching()
    ec2.instance_groups()
    iam.action_names()
    iam.answers()
    iam.managed_policies()
    tagging.pages()
    ssm.apply()
    cloudformation.apply()
    cfn_lifecycle.apply()
    cfn_getatt.apply()
    stacksets.apply()
    _applied = True

"""The IAM policy that runs a lab's whole lifecycle and nothing more, built by small pure functions.

`awslab policy week6` prints it; `policies/week6.json` is the same document (a test keeps them
equal). Scoping, per statement: describes and lists take no resource-level permissions on AWS, so
they are `*`; creates that accept tags on create require the `awslab:stack` request tag; changes
and deletes of existing resources require the `awslab:stack` resource tag where the service
evaluates it (EC2, RDS, ElastiCache, Secrets Manager), and name patterns where it does not (IAM's
`awslab-*` roles and profiles). `iam:PassRole` is limited to the lab's host roles and to EC2.
"""

from __future__ import annotations

import json

from awslab.spec.tags import TAG_STACK

STACK_TAG_PRESENT = {"Null": {f"aws:RequestTag/{TAG_STACK}": "false"}}
OWNED = {"Null": {f"aws:ResourceTag/{TAG_STACK}": "false"}}
HOST_ROLES = "arn:aws:iam::*:role/awslab-*-host"
HOST_PROFILES = "arn:aws:iam::*:instance-profile/awslab-*-host"


def _stmt(sid: str, actions: list[str], resources: list[str] | str = "*", condition: dict | None = None) -> dict:
    out = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions),
           "Resource": resources if isinstance(resources, str) else sorted(resources)}
    if condition:
        out["Condition"] = condition
    return out


def _arns(service: str, *kinds: str, sep: str = ":") -> list[str]:
    return [f"arn:aws:{service}:*:*:{k}{sep}*" for k in kinds]


EC2_OWN = _arns("ec2", "vpc", "subnet", "internet-gateway", "route-table", "security-group", "instance", sep="/")
RDS_OWN = _arns("rds", "db", "subgrp", "snapshot", "pg", "cluster", "cluster-pg", "cluster-snapshot")
CACHE_OWN = _arns("elasticache", "replicationgroup", "cluster", "subnetgroup", "snapshot", "parametergroup")


def read_statements() -> list[dict]:
    return [
        # EC2's describes and these two global reads take no resource-level permissions.
        _stmt("ReadOnlyDiscoveryNoResourceLevel", [
            "ec2:DescribeAvailabilityZones", "ec2:DescribeInstances", "ec2:DescribeInternetGateways",
            "ec2:DescribeNetworkAcls", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets",
            "ec2:DescribeVpcs", "ec2:DescribeRegions", "tag:GetResources", "sts:GetCallerIdentity",
            "rds:DescribeDBInstanceAutomatedBackups", "rds:DescribePendingMaintenanceActions",
            "ssm:GetCommandInvocation"]),
        _stmt("ReadDatabases", ["rds:DescribeDBInstances", "rds:DescribeDBSnapshots", "rds:DescribeDBSubnetGroups",
                                "rds:DescribeDBParameterGroups", "rds:DescribeDBParameters",
                                "rds:DescribeDBClusters", "rds:DescribeDBClusterParameterGroups",
                                "rds:DescribeDBClusterParameters", "rds:DescribeDBClusterSnapshots",
                                "rds:ListTagsForResource"], RDS_OWN),
        _stmt("ReadCaches", ["elasticache:DescribeCacheClusters", "elasticache:DescribeCacheSubnetGroups",
                             "elasticache:DescribeReplicationGroups", "elasticache:DescribeSnapshots",
                             "elasticache:DescribeCacheParameterGroups", "elasticache:DescribeCacheParameters",
                             "elasticache:ListTagsForResource"], CACHE_OWN),
        _stmt("LatestAmazonLinuxAmi", ["ssm:GetParameter"], "arn:aws:ssm:*:*:parameter/aws/service/ami-amazon-linux-latest/*"),
        _stmt("ReadHostRole", ["iam:GetInstanceProfile", "iam:GetRole", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies"],
              [HOST_ROLES, HOST_PROFILES]),
        _stmt("ReadStackSecret", ["secretsmanager:DescribeSecret"], "arn:aws:secretsmanager:*:*:secret:awslab/*"),
    ]


def network_statements() -> list[dict]:
    return [
        _stmt("CreateTaggedNetworkAndHost", [
            "ec2:CreateVpc", "ec2:CreateSubnet", "ec2:CreateInternetGateway", "ec2:CreateRouteTable",
            "ec2:CreateSecurityGroup", "ec2:RunInstances"],
              EC2_OWN + ["arn:aws:ec2:*:*:volume/*"], STACK_TAG_PRESENT),
        # RunInstances also names the stack's subnet and group, AWS's image, and a new network interface.
        _stmt("RunInstancesInStackNetwork", ["ec2:RunInstances"], _arns("ec2", "subnet", "security-group", sep="/"), OWNED),
        _stmt("RunInstancesFromAmazonImages", ["ec2:RunInstances"], "arn:aws:ec2:*::image/*",
              {"StringEquals": {"ec2:Owner": "amazon"}}),
        _stmt("RunInstancesNetworkInterface", ["ec2:RunInstances"], "arn:aws:ec2:*:*:network-interface/*"),
        _stmt("TagOnCreateOnly", ["ec2:CreateTags"], EC2_OWN + ["arn:aws:ec2:*:*:volume/*"],
              {"StringEquals": {"ec2:CreateAction": ["CreateVpc", "CreateSubnet", "CreateInternetGateway",
                                                     "CreateRouteTable", "CreateSecurityGroup", "RunInstances"]}}),
        # The stack's record (owner, expiry, overrides; a sweeper's claim) lives in its VPC's tags.
        _stmt("StackRecordOnItsVpc", ["ec2:CreateTags", "ec2:DeleteTags"], _arns("ec2", "vpc", sep="/"), OWNED),
        _stmt("ChangeAndDeleteStackNetwork", [
            "ec2:ModifyVpcAttribute", "ec2:AttachInternetGateway", "ec2:DetachInternetGateway", "ec2:CreateRoute",
            "ec2:ReplaceRoute", "ec2:AssociateRouteTable", "ec2:DisassociateRouteTable",
            "ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress",
            "ec2:RevokeSecurityGroupEgress", "ec2:TerminateInstances", "ec2:DeleteVpc", "ec2:DeleteSubnet",
            "ec2:DeleteInternetGateway", "ec2:DeleteRouteTable", "ec2:DeleteSecurityGroup"], EC2_OWN, OWNED),
    ]


def host_role_statements() -> list[dict]:
    return [
        _stmt("ManageHostRoleAndProfile", [
            "iam:CreateRole", "iam:TagRole", "iam:DeleteRole", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
            "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:CreateInstanceProfile", "iam:TagInstanceProfile",
            "iam:DeleteInstanceProfile", "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile"],
              [HOST_ROLES, HOST_PROFILES]),
        _stmt("PassHostRoleToEc2Only", ["iam:PassRole"], HOST_ROLES, {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
    ]


def database_statements() -> list[dict]:
    return [
        _stmt("CreateTaggedDatabaseResources", [
            "rds:CreateDBSubnetGroup", "rds:CreateDBParameterGroup", "rds:CreateDBInstance",
            "rds:CreateDBInstanceReadReplica", "rds:CreateDBSnapshot",
            "rds:CopyDBSnapshot", "rds:RestoreDBInstanceFromDBSnapshot", "rds:RestoreDBInstanceToPointInTime",
            "rds:CreateDBCluster", "rds:CreateDBClusterParameterGroup",   # database.deployment = "cluster"
            "rds:CreateDBClusterSnapshot", "rds:RestoreDBClusterFromSnapshot", "rds:RestoreDBClusterToPointInTime",
            "rds:AddTagsToResource"], RDS_OWN + _arns("rds", "og")),
        _stmt("ChangeAndDeleteStackDatabases", [
            "rds:DeleteDBInstance", "rds:DeleteDBSnapshot", "rds:DeleteDBSubnetGroup", "rds:RebootDBInstance",
            "rds:ModifyDBParameterGroup", "rds:DeleteDBParameterGroup",
            "rds:ModifyDBInstance", "rds:PromoteReadReplica", "rds:ApplyPendingMaintenanceAction",
            "rds:ModifyDBCluster", "rds:ModifyDBClusterParameterGroup", "rds:DeleteDBClusterParameterGroup",
            "rds:FailoverDBCluster",
            "rds:DeleteDBCluster", "rds:DeleteDBClusterSnapshot"], RDS_OWN, OWNED),
        # ManageMasterUserPassword: RDS makes its secret (named rds!...) with the caller's permissions.
        _stmt("RdsManagedMasterSecret", ["secretsmanager:CreateSecret", "secretsmanager:TagResource",
                                         "secretsmanager:RotateSecret"], "arn:aws:secretsmanager:*:*:secret:rds!*"),
        _stmt("RdsDefaultKeys", ["kms:DescribeKey"], "arn:aws:kms:*:*:key/*"),
    ]


def cache_statements() -> list[dict]:
    return [
        _stmt("CreateTaggedCacheResources", [
            "elasticache:CreateCacheSubnetGroup", "elasticache:CreateCacheParameterGroup",
            "elasticache:CreateReplicationGroup", "elasticache:CreateSnapshot",
            "elasticache:AddTagsToResource"], CACHE_OWN),
        _stmt("ChangeAndDeleteStackCache", [
            "elasticache:DeleteCacheSubnetGroup", "elasticache:DeleteReplicationGroup", "elasticache:DeleteSnapshot",
            "elasticache:TestFailover", "elasticache:ModifyReplicationGroup",
            "elasticache:ModifyCacheParameterGroup", "elasticache:DeleteCacheParameterGroup"], CACHE_OWN, OWNED),
        _stmt("CacheAuthTokenSecret", ["secretsmanager:CreateSecret", "secretsmanager:TagResource",
                                       "secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret"],
              "arn:aws:secretsmanager:*:*:secret:awslab/*/cache-auth-token-*"),
    ]


def verify_statements() -> list[dict]:
    return [
        _stmt("VerifyFromTheHost", ["ssm:SendCommand"], ["arn:aws:ec2:*:*:instance/*", "arn:aws:ssm:*:*:document/AWS-RunShellScript"]),
    ]


def lab_policy(lab_name: str) -> dict:
    """The least-privilege policy for every awslab command on a lab (the week-6 topology)."""
    statements = (read_statements() + network_statements() + host_role_statements() + database_statements()
                  + cache_statements() + verify_statements())
    return {"Version": "2012-10-17", "Statement": statements}


STACKSET_OWN = "arn:aws:cloudformation:*:*:stackset/awslab-*:*"
STACKSET_ADMIN_ROLE = "arn:aws:iam::*:role/AWSCloudFormationStackSetAdministrationRole"


def stackset_policy() -> dict:
    """The least-privilege policy for `awslab class ... --stackset` in the account that runs it (the
    StackSet's administrator): awslab's own StackSets (``awslab-<class>``) and their instances,
    handing CloudFormation the administration role, and entering the students' accounts to grade
    them (the role it enters needs the lab's policy there). The template's resources are made by
    the execution role in each account, not by this policy."""
    return {"Version": "2012-10-17", "Statement": [
        # CreateStackSet and ListStackSets take no resource-level permissions.
        _stmt("CreateStackSets", ["cloudformation:CreateStackSet"]),
        _stmt("AwslabStackSets", [
            "cloudformation:DeleteStackSet", "cloudformation:DescribeStackSet", "cloudformation:ListStackInstances",
            "cloudformation:DescribeStackSetOperation", "cloudformation:ListStackSetOperations",
            "cloudformation:ListStackSetOperationResults", "cloudformation:TagResource"], STACKSET_OWN),
        # Instance operations also name the targets and the resource types the template makes.
        _stmt("AwslabStackSetInstances", ["cloudformation:CreateStackInstances", "cloudformation:DeleteStackInstances",
                                          "cloudformation:UpdateStackSet"],
              [STACKSET_OWN, "arn:aws:cloudformation:*:*:stackset-target/*", "arn:aws:cloudformation:*:*:type/resource/*"]),
        _stmt("PassTheAdministrationRole", ["iam:PassRole"], STACKSET_ADMIN_ROLE,
              {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}),
        _stmt("CheckTheAdministrationRole", ["iam:GetRole"], STACKSET_ADMIN_ROLE),
        _stmt("EnterStudentAccountsToGrade", ["sts:AssumeRole"], [
            "arn:aws:iam::*:role/AWSCloudFormationStackSetExecutionRole",
            "arn:aws:iam::*:role/OrganizationAccountAccessRole"]),
        _stmt("WhoAmI", ["sts:GetCallerIdentity"]),
    ]}


def render(policy: dict) -> str:
    return json.dumps(policy, indent=2) + "\n"


def actions(policy: dict) -> set[str]:
    return {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}

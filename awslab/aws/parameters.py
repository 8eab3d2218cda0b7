"""Parameter groups: the DB parameter group the primary and its replicas use, and the cache
parameter group the replication group uses. On AWS an engine's settings live there, not on the
instance: the lab's ``database.force_ssl`` is the group's ``rds.force_ssl`` (PostgreSQL) or
``require_secure_transport`` (MySQL), its ``cache.maxmemory_policy`` the cache group's
``maxmemory-policy``. A default group (``default.postgres16``) cannot be changed, so each stack
has its own, tagged and named after the stack like everything else.

Each group's parameters are a settings table (spec/model.Setting) whose create and modify names
are the group's parameter names: `up` sets them after creating the group and changes in place
(ModifyDBParameterGroup / ModifyCacheParameterGroup) what differs from the lab; the export and
verify read the same table.
"""

from __future__ import annotations

from awslab.aws._common import owned, stack_arns
from awslab.engine.run import Run, create_or_adopt
from awslab.engine.waiting import ignoring, retry_eventual, unless_missing
from awslab.spec import cfn
from awslab.spec.model import Change, Desired, Found, Setting, parameters
from awslab.spec.tags import from_tag_list
from awslab.spec.topology import names


def _flag(value: str) -> bool | None:
    return {"1": True, "0": False, "on": True, "off": False}.get(str(value).lower())


def _one_zero(value: bool) -> str:
    return "1" if value else "0"


# The DB parameter group's table per engine: lab key -> the group's parameter.
DB_PARAMETERS: dict[str, tuple[Setting, ...]] = {
    "postgres": (Setting("database.force_ssl", "force_ssl", create=("rds.force_ssl",), modify=("rds.force_ssl",),
                         describe="rds.force_ssl", cfn=("rds.force_ssl",), check="spec.db.parameters",
                         read=_flag, write=_one_zero),),
    "mysql": (Setting("database.force_ssl", "force_ssl", create=("require_secure_transport",),
                      modify=("require_secure_transport",), describe="require_secure_transport",
                      cfn=("require_secure_transport",), check="spec.db.parameters", read=_flag, write=_one_zero),),
}
DB_PARAMETERS["mariadb"] = DB_PARAMETERS["mysql"]   # RDS for MariaDB names it the same
CACHE_PARAMETERS: tuple[Setting, ...] = (
    Setting("cache.maxmemory_policy", "maxmemory_policy", create=("maxmemory-policy",), modify=("maxmemory-policy",),
            describe="maxmemory-policy", cfn=("maxmemory-policy",), check="spec.cache.parameters"),
)


def cache_description(stack: str) -> str:
    """The cache parameter group's description, which the exported template gives it too."""
    return f"awslab {stack}: the cache's parameters"


def db_family(db) -> str:
    """The DB parameter group family of the lab's engine and major version (postgres16, mysql8.0)."""
    return f"{db.engine}{db.engine_version}"


def cache_family(cache) -> str:
    """The cache parameter group family of the lab's engine version (redis7, redis6.x)."""
    major = cache.engine_version.split(".")[0]
    return f"{cache.engine}{major}" if int(major) >= 7 else f"{cache.engine}{major}.x"


def values(settings: tuple[Setting, ...], section) -> dict[str, str]:
    """The group's parameters as AWS takes them: {parameter name: value, as text}."""
    return {name: str(value) for name, value in parameters(settings, section, "create").items()}


def group_changes(settings: tuple[Setting, ...], section, raw: dict[str, str]) -> tuple[Change, ...]:
    """The group's parameters that differ from the lab: ``raw`` holds those set in the group
    (Source=user), so one not set there (a run stopped between creating the group and setting
    it) has the engine's default, which is a change too."""
    out = []
    for s in settings:
        want = s.wanted(section)
        for name, value in values((s,), section).items():
            have = raw.get(name)
            if have != value:
                out.append(Change(s.key, s.seen(raw) if have is not None else "(engine default)", want))
                break
    return tuple(out)


# "In use" while the last instance that used it is being deleted.
_db_group_in_use = retry_eventual({"InvalidDBParameterGroupState"}, within_s=15 * 60)
_cache_group_in_use = retry_eventual({"InvalidCacheParameterGroupState"}, within_s=15 * 60)


def _first(groups: list[dict]) -> dict | None:
    # AWS answers a name it does not have with ...NotFound; an emulator may answer an empty list.
    return groups[0] if groups else None


def discover(run: Run) -> list[Found]:
    """The stack's two groups and the parameters set in them (see ``_ParameterGroup.find``)."""
    nm = names(run.stack, run.ctx.region)
    tagged = stack_arns(run)
    found = (DbParameterGroup().find(run, "db.parameter-group", nm["db.parameter-group"], tagged),
             CacheParameterGroup().find(run, "cache.parameter-group", nm["cache.parameter-group"], tagged))
    return [f for f in found if f is not None]


class _ParameterGroup:
    """What the two kinds share: found by the tagging index or by name, their parameters read
    (Source=user), created and changed from their tables. Each kind names its service's calls."""

    kind = ""
    capabilities = frozenset({"settings"})
    section = ""          # the lab section the table reads ("database", "cache")
    service = ""          # "rds", "elasticache"
    arn_part = ""         # the ARN's resource type (":pg:", ":parametergroup:")
    not_found = ""        # the service's error code for a missing group
    name_field = ""       # the describe's field for the group's name

    def _table(self, d: Desired) -> tuple[Setting, ...]:
        raise NotImplementedError

    def _describe(self, client, name: str) -> dict | None:
        raise NotImplementedError

    def _arn(self, group: dict) -> str:
        raise NotImplementedError

    def _tags(self, client, arn: str) -> dict[str, str]:
        return from_tag_list(client.list_tags_for_resource(ResourceName=arn).get("TagList"))

    def _parameters(self, client, name: str) -> dict[str, str]:
        raise NotImplementedError

    def _modify(self, run: Run, name: str, parameters: dict[str, str]) -> None:
        raise NotImplementedError

    def _unindexed(self, run: Run, client, name: str) -> dict | None:
        """The group when the tagging index does not list it yet: by its name."""
        return unless_missing(lambda: self._describe(client, name), self.not_found)

    def find(self, run: Run, key: str, name: str, tagged: frozenset[str]) -> Found | None:
        """A group the tagging index lists under the stack (``stack_arns``, read once per run) is
        the stack's: only its parameters are read. Otherwise it is looked up (the index lags a new
        resource) and its tags read."""
        client = run.client(self.service)
        ours = {arn.rpartition(self.arn_part)[2]: arn for arn in tagged if self.arn_part in arn}
        if name not in ours and len(ours) == 1:   # a name of CloudFormation's (an exported template)
            name = next(iter(ours))
        arn = ours.get(name)
        if arn is None:
            group = self._unindexed(run, client, name)
            if group is None or not owned(run, self._arn(group), lambda a: self._tags(client, a)):
                return None
            name, arn = group.get(self.name_field) or name, self._arn(group)
        set_here = unless_missing(lambda: self._parameters(client, name), self.not_found)
        if set_here is None:
            return None
        return Found(key, self.kind, name, "available", attrs={"arn": arn, "raw": set_here})

    def _create(self, run: Run, d: Desired, create, exists_code: str) -> Found:
        client = run.client(self.service)
        group = create_or_adopt(run, f"{self.kind.replace('-', ' ')} {d.name}", lambda: create(client),
                                exists_code, lambda: self._describe(client, d.name),
                                lambda g: self._tags(client, self._arn(g)))
        wanted = values(self._table(d), d.spec[self.section])
        self._modify(run, d.name, wanted)
        return Found(d.key, self.kind, d.name, "available", attrs={"arn": self._arn(group), "raw": wanted})

    def changes(self, d: Desired, f: Found) -> tuple[Change, ...]:
        return group_changes(self._table(d), d.spec[self.section], f.get("raw") or {})

    def apply(self, run: Run, d: Desired, f: Found, changes: tuple[Change, ...]) -> Found:
        table = {s.key: s for s in self._table(d)}
        wanted = values(tuple(table[c.setting] for c in changes), d.spec[self.section])
        self._modify(run, f.id, wanted)
        return Found(f.key, f.kind, f.id, "available", f.created, {**f.attrs, "raw": {**(f.get("raw") or {}), **wanted}})


# What a kind of parameter group elsewhere builds on (aws/db_cluster.py's DB cluster parameter group).
ParameterGroup = _ParameterGroup


class DbParameterGroup(_ParameterGroup):
    kind = "db-parameter-group"
    capabilities = frozenset({"export", "settings"})
    section, service, arn_part, not_found = "database", "rds", ":pg:", "DBParameterGroupNotFound"
    name_field = "DBParameterGroupName"

    def export(self, x: cfn.ExportFor) -> cfn.Export | None:
        """Its table's parameters (a cluster's are in its DB cluster parameter group, db_cluster.py)."""
        d = x.lab.database
        if x.cluster:
            return None
        return cfn.Export({"DbParameterGroup": {"Type": "AWS::RDS::DBParameterGroup", "Properties": {
            "DBParameterGroupName": x.name("db.parameter-group"), "Family": db_family(d),
            "Description": cfn.sub(f"awslab {cfn.STACK}: the database's parameters"),
            "Parameters": values(DB_PARAMETERS[d.engine], d), "Tags": cfn.tags("db.parameter-group", x.lab)}}})

    def _table(self, d: Desired) -> tuple[Setting, ...]:
        return DB_PARAMETERS[d.spec["database"].engine]

    def _describe(self, client, name: str) -> dict | None:
        return _first(client.describe_db_parameter_groups(DBParameterGroupName=name)["DBParameterGroups"])

    def _arn(self, group: dict) -> str:
        return group["DBParameterGroupArn"]

    def _parameters(self, client, name: str) -> dict[str, str]:
        return {p["ParameterName"]: p.get("ParameterValue") for page in client.get_paginator("describe_db_parameters")
                .paginate(DBParameterGroupName=name, Source="user") for p in page["Parameters"]}

    def create(self, run: Run, d: Desired) -> Found:
        return self._create(run, d, lambda rds: rds.create_db_parameter_group(
            DBParameterGroupName=d.name, DBParameterGroupFamily=db_family(d.spec["database"]),
            Description=f"awslab {run.stack}: the database's parameters", Tags=run.tag_list(d.key, d.name),
        )["DBParameterGroup"], "DBParameterGroupAlreadyExists")

    def _modify(self, run: Run, name: str, parameters: dict[str, str]) -> None:
        # Dynamic parameters apply at once; the instances that use the group take them without a reboot.
        run.client("rds").modify_db_parameter_group(DBParameterGroupName=name, Parameters=[
            {"ParameterName": k, "ParameterValue": v, "ApplyMethod": "immediate"} for k, v in parameters.items()])

    def delete(self, run: Run, f: Found) -> None:
        with ignoring("DBParameterGroupNotFound"):
            _db_group_in_use(run.client("rds").delete_db_parameter_group)(DBParameterGroupName=f.id)


class CacheParameterGroup(_ParameterGroup):
    kind = "cache-parameter-group"
    capabilities = frozenset({"export", "settings"})
    section, service, arn_part, not_found = "cache", "elasticache", ":parametergroup:", "CacheParameterGroupNotFound"
    name_field = "CacheParameterGroupName"

    def export(self, x: cfn.ExportFor) -> cfn.Export:
        """Its table's parameters. CloudFormation names a cache parameter group itself (the type has
        no name property): awslab finds it by its tags."""
        c = x.lab.cache
        return cfn.Export({"CacheParameterGroup": {"Type": "AWS::ElastiCache::ParameterGroup", "Properties": {
            "CacheParameterGroupFamily": cache_family(c), "Description": cfn.sub(f"awslab {cfn.STACK}: the cache's parameters"),
            "Properties": values(CACHE_PARAMETERS, c), "Tags": cfn.tags("cache.parameter-group", x.lab)}}})

    def _table(self, d: Desired) -> tuple[Setting, ...]:
        return CACHE_PARAMETERS

    def _describe(self, client, name: str) -> dict | None:
        return _first(client.describe_cache_parameter_groups(CacheParameterGroupName=name)["CacheParameterGroups"])

    def _arn(self, group: dict) -> str:
        return group["ARN"]

    def _parameters(self, client, name: str) -> dict[str, str]:
        return {p["ParameterName"]: p.get("ParameterValue") for page in client.get_paginator("describe_cache_parameters")
                .paginate(CacheParameterGroupName=name, Source="user") for p in page["Parameters"]}

    def _unindexed(self, run: Run, client, name: str) -> dict | None:
        # One made by CloudFormation has a name of CloudFormation's: the one with the stack's description.
        return super()._unindexed(run, client, name) or next(
            (g for page in client.get_paginator("describe_cache_parameter_groups").paginate()
             for g in page["CacheParameterGroups"] if g.get("Description") == cache_description(run.stack)), None)

    def create(self, run: Run, d: Desired) -> Found:
        return self._create(run, d, lambda ec: ec.create_cache_parameter_group(
            CacheParameterGroupName=d.name, CacheParameterGroupFamily=cache_family(d.spec["cache"]),
            Description=cache_description(run.stack), Tags=run.tag_list(d.key, d.name),
        )["CacheParameterGroup"], "CacheParameterGroupAlreadyExists")

    def _modify(self, run: Run, name: str, parameters: dict[str, str]) -> None:
        run.client("elasticache").modify_cache_parameter_group(CacheParameterGroupName=name, ParameterNameValues=[
            {"ParameterName": k, "ParameterValue": v} for k, v in parameters.items()])

    def delete(self, run: Run, f: Found) -> None:
        with ignoring("CacheParameterGroupNotFound"):
            _cache_group_in_use(run.client("elasticache").delete_cache_parameter_group)(CacheParameterGroupName=f.id)


def upgrade_group(run: Run, d: Desired, f: Found) -> tuple[str | None, str]:
    """For a major upgrade of the primary ``f``: (the group it uses now, the group it moves to).
    AWS wants a group of the new version's family named in the same ModifyDBInstance, and cannot
    change a group's family: the stack's group is made again in it, with the lab's parameters,
    named after it (``<stack>-db-postgres18``), tagged as the stack's DB parameter group."""
    db = d.spec["database"]
    current = next((g.get("DBParameterGroupName") for g in (f.get("raw") or {}).get("DBParameterGroups", [])), None)
    name = f"{names(run.stack, run.ctx.region)['db.parameter-group']}-{db_family(db)}"
    group = DbParameterGroup().create(run, Desired("db.parameter-group", DbParameterGroup.kind, name, (), {"database": db}))
    return current, group.id


def drop_db_group(run: Run, name: str | None, keep: str) -> None:
    """The group the instances used before an upgrade, once none does (a default group is AWS's)."""
    if not name or name == keep or name.startswith("default."):
        return
    with ignoring("DBParameterGroupNotFound", "InvalidDBParameterGroupState"):
        run.client("rds").delete_db_parameter_group(DBParameterGroupName=name)

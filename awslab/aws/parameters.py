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
from awslab.spec.model import Change, Desired, Found, Setting
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
    """The group's parameters as AWS takes them: {parameter name: value}."""
    out = {}
    for s in settings:
        value = s.wanted(section)
        for name in s.create:
            out[name] = s.write(value) if s.write else str(value)
    return out


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
    """The stack's two groups and the parameters set in them. A group the tagging index lists
    under the stack (``stack_arns``, read once per run) is the stack's: only its parameters are
    read. Otherwise it is looked up by name (the index lags a new resource) and its tags read."""
    nm = names(run.stack, run.ctx.region)
    out: list[Found] = []
    tagged = {arn.rpartition(":")[2]: arn for arn in stack_arns(run) if ":pg:" in arn or ":parametergroup:" in arn}
    rds = run.client("rds")
    name = nm["db.parameter-group"]
    arn = tagged.get(name) if ":rds:" in (tagged.get(name) or "") else None
    if arn is None:
        group = unless_missing(lambda: _first(rds.describe_db_parameter_groups(DBParameterGroupName=name)["DBParameterGroups"]),
                               "DBParameterGroupNotFound")
        if group and owned(run, group["DBParameterGroupArn"], lambda a: from_tag_list(
                rds.list_tags_for_resource(ResourceName=a)["TagList"])):
            arn = group["DBParameterGroupArn"]
    if arn is not None:
        set_here = unless_missing(lambda: {p["ParameterName"]: p.get("ParameterValue") for page in rds.get_paginator(
            "describe_db_parameters").paginate(DBParameterGroupName=name, Source="user") for p in page["Parameters"]},
            "DBParameterGroupNotFound")
        if set_here is not None:
            out.append(Found("db.parameter-group", "db-parameter-group", name, "available",
                             attrs={"arn": arn, "raw": set_here}))
    ec = run.client("elasticache")
    name = nm["cache.parameter-group"]
    ours = [n for n, a in tagged.items() if ":elasticache:" in a]
    # Made by CloudFormation (an exported template), it has a name of CloudFormation's: the tagged one.
    name = name if name in ours or not ours else ours[0]
    arn = tagged.get(name) if name in ours else None
    if arn is None:
        group = unless_missing(lambda: _first(ec.describe_cache_parameter_groups(
            CacheParameterGroupName=name)["CacheParameterGroups"]), "CacheParameterGroupNotFound")
        if group is None:   # not yet in the index: the one whose description is the stack's
            group = next((g for page in ec.get_paginator("describe_cache_parameter_groups").paginate()
                          for g in page["CacheParameterGroups"] if g.get("Description") == cache_description(run.stack)),
                         None)
            name = group["CacheParameterGroupName"] if group else name
        if group and owned(run, group["ARN"], lambda a: from_tag_list(ec.list_tags_for_resource(ResourceName=a).get("TagList"))):
            arn = group["ARN"]
    if arn is not None:
        set_here = unless_missing(lambda: {p["ParameterName"]: p.get("ParameterValue") for page in ec.get_paginator(
            "describe_cache_parameters").paginate(CacheParameterGroupName=name, Source="user") for p in page["Parameters"]},
            "CacheParameterGroupNotFound")
        if set_here is not None:
            out.append(Found("cache.parameter-group", "cache-parameter-group", name, "available",
                             attrs={"arn": arn, "raw": set_here}))
    return out


class DbParameterGroup:
    kind = "db-parameter-group"
    capabilities = frozenset({"settings"})

    def _table(self, d: Desired) -> tuple[Setting, ...]:
        return DB_PARAMETERS[d.spec["database"].engine]

    def create(self, run: Run, d: Desired) -> Found:
        db, rds = d.spec["database"], run.client("rds")
        group = create_or_adopt(
            run, f"DB parameter group {d.name}",
            lambda: rds.create_db_parameter_group(
                DBParameterGroupName=d.name, DBParameterGroupFamily=db_family(db),
                Description=f"awslab {run.stack}: the database's parameters", Tags=run.tag_list(d.key, d.name),
            )["DBParameterGroup"],
            "DBParameterGroupAlreadyExists",
            lambda: rds.describe_db_parameter_groups(DBParameterGroupName=d.name)["DBParameterGroups"][0],
            lambda g: from_tag_list(rds.list_tags_for_resource(ResourceName=g["DBParameterGroupArn"])["TagList"]))
        wanted = values(self._table(d), db)
        self._modify(run, d.name, wanted)
        return Found(d.key, self.kind, d.name, "available",
                     attrs={"arn": group["DBParameterGroupArn"], "family": db_family(db), "raw": wanted})

    def _modify(self, run: Run, name: str, parameters: dict[str, str]) -> None:
        # Dynamic parameters apply at once; the instances that use the group take them without a reboot.
        run.client("rds").modify_db_parameter_group(DBParameterGroupName=name, Parameters=[
            {"ParameterName": k, "ParameterValue": v, "ApplyMethod": "immediate"} for k, v in parameters.items()])

    def changes(self, d: Desired, f: Found) -> tuple[Change, ...]:
        return group_changes(self._table(d), d.spec["database"], f.get("raw") or {})

    def apply(self, run: Run, d: Desired, f: Found, changes: tuple[Change, ...]) -> Found:
        table = {s.key: s for s in self._table(d)}
        wanted = values(tuple(table[c.setting] for c in changes), d.spec["database"])
        self._modify(run, f.id, wanted)
        return Found(f.key, f.kind, f.id, "available", f.created, {**f.attrs, "raw": {**(f.get("raw") or {}), **wanted}})

    def delete(self, run: Run, f: Found) -> None:
        with ignoring("DBParameterGroupNotFound"):
            _db_group_in_use(run.client("rds").delete_db_parameter_group)(DBParameterGroupName=f.id)


class CacheParameterGroup:
    kind = "cache-parameter-group"
    capabilities = frozenset({"settings"})

    def create(self, run: Run, d: Desired) -> Found:
        cache, ec = d.spec["cache"], run.client("elasticache")
        group = create_or_adopt(
            run, f"cache parameter group {d.name}",
            lambda: ec.create_cache_parameter_group(
                CacheParameterGroupName=d.name, CacheParameterGroupFamily=cache_family(cache),
                Description=cache_description(run.stack), Tags=run.tag_list(d.key, d.name),
            )["CacheParameterGroup"],
            "CacheParameterGroupAlreadyExists",
            lambda: ec.describe_cache_parameter_groups(CacheParameterGroupName=d.name)["CacheParameterGroups"][0],
            lambda g: from_tag_list(ec.list_tags_for_resource(ResourceName=g["ARN"]).get("TagList")))
        wanted = values(CACHE_PARAMETERS, cache)
        self._modify(run, d.name, wanted)
        return Found(d.key, self.kind, d.name, "available",
                     attrs={"arn": group.get("ARN"), "family": cache_family(cache), "raw": wanted})

    def _modify(self, run: Run, name: str, parameters: dict[str, str]) -> None:
        run.client("elasticache").modify_cache_parameter_group(CacheParameterGroupName=name, ParameterNameValues=[
            {"ParameterName": k, "ParameterValue": v} for k, v in parameters.items()])

    def changes(self, d: Desired, f: Found) -> tuple[Change, ...]:
        return group_changes(CACHE_PARAMETERS, d.spec["cache"], f.get("raw") or {})

    def apply(self, run: Run, d: Desired, f: Found, changes: tuple[Change, ...]) -> Found:
        table = {s.key: s for s in CACHE_PARAMETERS}
        wanted = values(tuple(table[c.setting] for c in changes), d.spec["cache"])
        self._modify(run, f.id, wanted)
        return Found(f.key, f.kind, f.id, "available", f.created, {**f.attrs, "raw": {**(f.get("raw") or {}), **wanted}})

    def delete(self, run: Run, f: Found) -> None:
        with ignoring("CacheParameterGroupNotFound"):
            _cache_group_in_use(run.client("elasticache").delete_cache_parameter_group)(CacheParameterGroupName=f.id)

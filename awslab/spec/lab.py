"""The lab as data: a TOML file loaded into frozen, validated settings before any AWS call.

``load_lab("week6", overrides=["database.multi_az=false"])`` finds ``labs/week6.toml`` (shipped in
the wheel), applies ``--set`` overrides with the same typing rules, and validates everything. Every
error is a :class:`~awslab.errors.LabError` that names the file, the key and the fix.
"""

from __future__ import annotations

import difflib
import ipaddress
import sys
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from awslab.errors import LabError, UsageError
from awslab.spec import catalog, deployment, rds_versions, windows

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class Network:
    vpc_cidr: str = "10.60.0.0/16"
    public_subnet_cidr: str = "10.60.0.0/24"
    private_subnet_cidrs: tuple[str, ...] = ("10.60.10.0/24", "10.60.11.0/24")
    availability_zones: tuple[str, ...] = ()
    cluster_subnet_cidr: str = "10.60.12.0/24"   # private-c, the third AZ: made only for a Multi-AZ DB cluster


@dataclass(frozen=True)
class Host:
    instance_type: str = "t3.micro"
    ami_parameter: str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    ssh_cidr: str = ""
    managed_policy_arns: tuple[str, ...] = ("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",)


# Master user names RDS refuses per engine (AWS: "a reserved word for the chosen engine"): `admin` is
# the console's default for MySQL, and RDS PostgreSQL refuses it.
RESERVED_MASTER_USERNAMES = {"postgres": ("admin", "postgres", "rdsadmin", "root"), "mysql": ("rdsadmin", "root"),
                             "mariadb": ("rdsadmin", "root")}

@dataclass(frozen=True)
class Database:
    engine: str = "postgres"
    engine_version: str = "16"
    instance_class: str = "db.t3.micro"
    allocated_storage_gib: int = 20
    storage_type: str = "gp3"
    multi_az: bool = True
    storage_encrypted: bool = True
    backup_retention_days: int = 7
    master_username: str = "labadmin"
    database_name: str = "lab"
    deletion_protection: bool = False
    read_replicas: int = 1
    force_ssl: bool = True     # the DB parameter group's rds.force_ssl / require_secure_transport
    deployment: str = "instance"   # or "cluster": a Multi-AZ DB cluster (spec/deployment.py)
    cluster_instance_class: str = "db.m6gd.large"   # the cluster's members' class (no db.t* for clusters)
    iops: int = 0              # provisioned IOPS: io1/io2 need them; 0 = the storage's baseline
    maintenance_window: str = ""   # RDS's weekly window, ddd:hh24:mi-ddd:hh24:mi (UTC); empty: RDS's default

    @property
    def port(self) -> int:
        return catalog.DB_ENGINES[self.engine]["port"]


@dataclass(frozen=True)
class Cache:
    engine: str = "redis"
    engine_version: str = "6.2"   # what the local AWS's redis-server runs (6.2.14)
    node_type: str = "cache.t3.micro"
    replicas: int = 1
    automatic_failover: bool = True
    at_rest_encryption: bool = True
    transit_encryption: bool = True
    maxmemory_policy: str = "volatile-lru"   # the cache parameter group's maxmemory-policy (AWS's default)

    @property
    def port(self) -> int:
        return catalog.CACHE_ENGINES[self.engine]["port"]


@dataclass(frozen=True)
class Security:
    """Named overrides of awslab's secure defaults; `verify` reports each one used as a WARN."""

    allow_unencrypted_storage: bool = False
    allow_unencrypted_cache: bool = False


@dataclass(frozen=True)
class Lab:
    name: str
    description: str = ""
    source: str = "<defaults>"
    network: Network = field(default_factory=Network)
    host: Host = field(default_factory=Host)
    database: Database = field(default_factory=Database)
    cache: Cache = field(default_factory=Cache)
    security: Security = field(default_factory=Security)


SECTIONS: dict[str, type] = {"network": Network, "host": Host, "database": Database, "cache": Cache,
                             "security": Security}
# Names people reach for first; `--set rds.multi_az=false` means `database.multi_az`.
SECTION_ALIASES = {"vpc": "network", "ec2": "host", "rds": "database", "db": "database",
                   "elasticache": "cache", "redis": "cache"}


def labs_dir() -> Path:
    """Where the shipped lab files are: inside the wheel, or the source tree's ``labs/``."""
    package = Path(__file__).resolve().parent.parent    # awslab/
    packaged = package / "_data" / "labs"
    return packaged if packaged.is_dir() else package.parent / "labs"


def available_labs() -> list[str]:
    return sorted(p.stem for p in labs_dir().glob("*.toml"))


def load_lab(name: str | None = None, lab_file: str | Path | None = None,
             overrides: typing.Sequence[str] = ()) -> Lab:
    """Load, override and validate a lab; raise LabError/UsageError on anything wrong."""
    if lab_file is not None:
        path = Path(lab_file)
        if not path.is_file():
            raise UsageError(f"lab file not found: {path}", "give the path of a TOML lab file")
    else:
        if not name:
            raise UsageError("no lab given", f"name one of: {', '.join(available_labs())}")
        path = labs_dir() / f"{name}.toml"
        if not path.is_file():
            raise UsageError(f"unknown lab '{name}'", f"available labs: {', '.join(available_labs()) or 'none'}; or use --lab-file PATH")
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LabError(source, None, f"not valid TOML ({exc})", "fix the syntax at that line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabError(source, None, f"cannot be read ({exc})") from None
    return lab_from_dict(data, source, overrides, default_name=path.stem)


def lab_from_dict(data: dict, source: str, overrides: typing.Sequence[str] = (),
                  default_name: str = "lab") -> Lab:
    meta = data.get("lab", {})
    if not isinstance(meta, dict):
        raise LabError(source, "lab", "must be a table", "write it as [lab]")
    _reject_unknown(source, "lab", meta, ("name", "description"))
    for top in data:
        if top != "lab" and top not in SECTIONS:
            raise LabError(source, top, "unknown section", _suggest(top, ["lab", *SECTIONS]))
    lab_name = meta.get("name", default_name)
    if not isinstance(lab_name, str) or not lab_name:
        raise LabError(source, "lab.name", "must be a non-empty string")
    sections = {}
    for sec_name, cls in SECTIONS.items():
        raw = data.get(sec_name, {})
        if not isinstance(raw, dict):
            raise LabError(source, sec_name, "must be a table", f"write it as [{sec_name}]")
        sections[sec_name] = _build(cls, raw, source, sec_name)
    lab = Lab(name=lab_name, description=str(meta.get("description", "")), source=source, **sections)
    for item in overrides:
        lab = apply_override(lab, item)
    try:
        validate(lab)
    except LabError as exc:
        if not overrides:
            raise
        raise _blame_overrides(exc, overrides) from None
    # RDS takes a window's days in any case and shows them lower-case: the lab compares as RDS shows.
    return replace(lab, database=replace(lab.database, maintenance_window=lab.database.maintenance_window.lower()))


def _blame_overrides(exc: LabError, overrides: typing.Sequence[str]) -> LabError:
    """A value the user gave with --set is the user's to fix, not the lab file's: name --set."""
    set_keys = {}
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        sec, attr = key.split(".", 1)
        set_keys[f"{SECTION_ALIASES.get(sec, sec)}.{attr}"] = item.strip()
    where = f"{exc.source}: {exc.key}: " if exc.key else f"{exc.source}: "
    problem = exc.message[len(where):] if exc.message.startswith(where) else exc.message
    if exc.key and exc.key.split("[", 1)[0] in set_keys:
        return LabError("--set", exc.key, problem, exc.hint)
    # Another setting now conflicts with what was set: name both the file and the overrides.
    return LabError(f"{exc.source} with --set {' '.join(set_keys.values())}", exc.key, problem, exc.hint)


def apply_override(lab: Lab, item: str) -> Lab:
    """Apply one ``section.key=value`` override, typed like the field it sets."""
    source = "--set"
    if "=" not in item:
        raise LabError(source, item, "expected KEY=VALUE", "e.g. --set database.multi_az=false")
    key, value = item.split("=", 1)
    key = key.strip()
    if "." not in key:
        raise LabError(source, key, "expected SECTION.KEY", f"sections: {', '.join(SECTIONS)}")
    sec, attr = key.split(".", 1)
    sec = SECTION_ALIASES.get(sec, sec)
    if sec not in SECTIONS:
        raise LabError(source, key, "unknown section", _suggest(sec, list(SECTIONS)))
    cls = SECTIONS[sec]
    names = [f.name for f in fields(cls)]
    if attr not in names:
        raise LabError(source, key, "unknown setting", _suggest(attr, names, prefix=f"{sec}."))
    ftype = _field_types(cls)[attr]
    typed = _parse_text(value.strip(), ftype, source, key)
    section = replace(getattr(lab, sec), **{attr: typed})
    if (sec, attr) == ("database", "engine") and typed in catalog.DB_ENGINES \
            and catalog.db_major(section.engine_version) not in catalog.DB_ENGINES[typed]["versions"]:
        # Another engine: its default major, unless a --set gives one (after this one, or before it).
        section = replace(section, engine_version=catalog.DB_ENGINES[typed]["default_version"])
    return replace(lab, **{sec: section})


def _build(cls: type, raw: dict, source: str, sec: str):
    names = [f.name for f in fields(cls)]
    _reject_unknown(source, sec, raw, names)
    hints = _field_types(cls)
    values = {k: _check_type(v, hints[k], source, f"{sec}.{k}") for k, v in raw.items()}
    return cls(**values)


def _field_types(cls: type) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls)


def _reject_unknown(source: str, sec: str, raw: dict, names: typing.Sequence[str]) -> None:
    for k in raw:
        if k not in names:
            raise LabError(source, f"{sec}.{k}", "unknown setting", _suggest(k, list(names), prefix=f"{sec}."))


def _suggest(word: str, choices: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    if close:
        return f"did you mean '{prefix}{close[0]}'?"
    return f"known: {', '.join(prefix + c for c in choices)}"


def _type_name(t) -> str:
    if typing.get_origin(t) is tuple:
        return "a list of strings"
    return {bool: "true or false", int: "a whole number", str: "a string"}.get(t, str(t))


def _check_type(value, t, source: str, key: str):
    if typing.get_origin(t) is tuple:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
    elif t is bool:
        if isinstance(value, bool):
            return value
    elif t is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, t):
        return value
    raise LabError(source, key, f"must be {_type_name(t)}, not {value!r}")


def _parse_text(text: str, t, source: str, key: str):
    if typing.get_origin(t) is tuple:
        return tuple(p.strip() for p in text.split(",") if p.strip())
    if t is bool:
        low = text.lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise LabError(source, key, f"must be true or false, not '{text}'")
    if t is int:
        try:
            return int(text)
        except ValueError:
            raise LabError(source, key, f"must be a whole number, not '{text}'") from None
    return text


def _network(source: str, key: str, text: str, v6: bool = False):
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise LabError(source, key, f"'{text}' is not a valid CIDR block ({exc})", "e.g. 10.60.0.0/16") from None
    if net.version == 6 and not v6:
        raise LabError(source, key, f"'{text}' is IPv6; this setting takes an IPv4 CIDR")
    return net


def validate(lab: Lab) -> None:
    """Check the lab against AWS's rules and awslab's safety rules. Raises LabError."""
    src = lab.source
    n, h, d, c = lab.network, lab.host, lab.database, lab.cache

    vpc = _network(src, "network.vpc_cidr", n.vpc_cidr)
    if not 16 <= vpc.prefixlen <= 28:
        raise LabError(src, "network.vpc_cidr", f"a VPC's block must be /16 to /28, not /{vpc.prefixlen}")
    if len(n.private_subnet_cidrs) != 2:
        raise LabError(src, "network.private_subnet_cidrs", f"needs exactly 2 CIDRs (one per AZ), got {len(n.private_subnet_cidrs)}")
    subnets = [("network.public_subnet_cidr", _network(src, "network.public_subnet_cidr", n.public_subnet_cidr))]
    subnets += [(f"network.private_subnet_cidrs[{i}]", _network(src, f"network.private_subnet_cidrs[{i}]", s))
                for i, s in enumerate(n.private_subnet_cidrs)]
    if deployment.is_cluster(d):
        subnets.append(("network.cluster_subnet_cidr", _network(src, "network.cluster_subnet_cidr", n.cluster_subnet_cidr)))
    for key, net in subnets:
        if not net.subnet_of(vpc):
            raise LabError(src, key, f"{net} is not inside the VPC's {vpc}", "choose a block within network.vpc_cidr")
        if not 16 <= net.prefixlen <= 28:
            raise LabError(src, key, f"a subnet's block must be /16 to /28, not /{net.prefixlen}")
    for i, (k1, a) in enumerate(subnets):
        for k2, b in subnets[i + 1:]:
            if a.overlaps(b):
                raise LabError(src, k2, f"{b} overlaps {k1} ({a})", "give each subnet its own block")
    azs = 3 if deployment.is_cluster(d) and len(n.availability_zones) != 2 else 2
    if n.availability_zones and (len(n.availability_zones) != azs or len(set(n.availability_zones)) != azs):
        raise LabError(src, "network.availability_zones", f"give {azs} different AZs, or none to pick the first {azs} available")

    if not catalog.EC2_TYPE_RE.match(h.instance_type):
        raise LabError(src, "host.instance_type", f"'{h.instance_type}' is not an EC2 instance type", "e.g. t3.micro")
    if not h.ami_parameter.startswith("/"):
        raise LabError(src, "host.ami_parameter", "must be an SSM parameter name starting with '/'")
    if h.ssh_cidr:
        ssh = _network(src, "host.ssh_cidr", h.ssh_cidr, v6=True)
        if ssh.prefixlen == 0:
            raise LabError(src, "host.ssh_cidr", f"{ssh} opens SSH to the whole internet",
                           "give your own address, e.g. 203.0.113.10/32, or leave it empty and use SSM Session Manager")
    for i, arn in enumerate(h.managed_policy_arns):
        if not arn.startswith("arn:aws"):
            raise LabError(src, f"host.managed_policy_arns[{i}]", f"'{arn}' is not a policy ARN")

    deployment.validate(lab)
    if d.engine not in catalog.DB_ENGINES:
        offered = {e["engine"] for e in catalog.RDS_ENGINES}
        what = "an RDS engine awslab's labs do not run yet" if d.engine in offered else "unknown engine"
        raise LabError(src, "database.engine", f"{what} '{d.engine}'",
                       f"a lab runs one of: {', '.join(catalog.DB_ENGINES)} (`awslab engines` lists what RDS offers)")
    versions = catalog.DB_ENGINES[d.engine]["versions"]
    major = catalog.db_major(d.engine_version)
    if major not in versions:
        raise LabError(src, "database.engine_version", f"{d.engine} {d.engine_version} is not offered", f"one of: {', '.join(versions)}")
    if d.engine_version != major and not rds_versions.is_offered(d.engine, d.engine_version):
        minors = rds_versions.offered_minors(d.engine, major)
        raise LabError(src, "database.engine_version", f"RDS does not offer {d.engine} {d.engine_version}",
                       f"RDS offers {major} as {', '.join(minors)}, or {major} alone (RDS picks "
                       f"{catalog.DB_ENGINES[d.engine]['default_minors'][major]})")
    if not catalog.DB_CLASS_RE.match(d.instance_class):
        raise LabError(src, "database.instance_class", f"'{d.instance_class}' is not an RDS instance class", "e.g. db.t3.micro")
    if d.storage_type not in catalog.DB_STORAGE_TYPES:
        raise LabError(src, "database.storage_type", f"unknown storage type '{d.storage_type}'", f"one of: {', '.join(catalog.DB_STORAGE_TYPES)}")
    lo, hi = catalog.DB_STORAGE_TYPES[d.storage_type]
    if not lo <= d.allocated_storage_gib <= hi:
        raise LabError(src, "database.allocated_storage_gib", f"{d.storage_type} takes {lo} to {hi} GiB, not {d.allocated_storage_gib}")
    if not 0 <= d.backup_retention_days <= 35:
        raise LabError(src, "database.backup_retention_days", f"must be 0 to 35, not {d.backup_retention_days}")
    if not 0 <= d.read_replicas <= 5:
        raise LabError(src, "database.read_replicas", f"must be 0 to 5, not {d.read_replicas}")
    if d.read_replicas and d.backup_retention_days == 0:
        raise LabError(src, "database.backup_retention_days", "read replicas need automated backups on the primary",
                       "set database.backup_retention_days to 1 or more, or database.read_replicas=0")
    reserved = RESERVED_MASTER_USERNAMES.get(d.engine, ())
    if not _is_identifier(d.master_username, 16) or d.master_username.lower() in reserved:
        raise LabError(src, "database.master_username", f"'{d.master_username}' is not allowed for {d.engine}",
                       "1-16 letters, digits or '_', starting with a letter; not a word the engine reserves: "
                       + ", ".join(reserved))
    if not _is_identifier(d.database_name, 63):
        raise LabError(src, "database.database_name", f"'{d.database_name}' is not a valid database name",
                       "letters, digits or '_', starting with a letter")
    if d.maintenance_window and (why := windows.error(d.maintenance_window)):
        raise LabError(src, "database.maintenance_window", why,
                       "e.g. sun:05:00-sun:05:30 (UTC, at least 30 minutes), or leave it out for RDS's default")
    if not d.storage_encrypted and not lab.security.allow_unencrypted_storage:
        raise LabError(src, "database.storage_encrypted", "awslab keeps database storage encrypted (AWS FSBP RDS.3)",
                       "to practise without it anyway, also set security.allow_unencrypted_storage=true (verify will WARN)")

    if c.engine not in catalog.CACHE_ENGINES:
        raise LabError(src, "cache.engine", f"unknown engine '{c.engine}'", f"one of: {', '.join(catalog.CACHE_ENGINES)}")
    if c.engine_version not in catalog.CACHE_ENGINES[c.engine]["versions"]:
        raise LabError(src, "cache.engine_version", f"{c.engine} {c.engine_version} is not offered",
                       f"one of: {', '.join(catalog.CACHE_ENGINES[c.engine]['versions'])}")
    if not catalog.CACHE_NODE_RE.match(c.node_type):
        raise LabError(src, "cache.node_type", f"'{c.node_type}' is not an ElastiCache node type", "e.g. cache.t3.micro")
    if c.maxmemory_policy not in catalog.CACHE_EVICTION_POLICIES:
        raise LabError(src, "cache.maxmemory_policy", f"'{c.maxmemory_policy}' is not a Redis eviction policy",
                       f"one of: {', '.join(catalog.CACHE_EVICTION_POLICIES)}")
    if not 0 <= c.replicas <= 5:
        raise LabError(src, "cache.replicas", f"must be 0 to 5, not {c.replicas}")
    if c.automatic_failover and c.replicas < 1:
        raise LabError(src, "cache.automatic_failover", "automatic failover needs at least one replica",
                       "set cache.replicas=1 or cache.automatic_failover=false")
    if not c.at_rest_encryption and not lab.security.allow_unencrypted_cache:
        raise LabError(src, "cache.at_rest_encryption", "awslab keeps cache data encrypted at rest (AWS FSBP ElastiCache.4)",
                       "to practise without it anyway, also set security.allow_unencrypted_cache=true (verify will WARN)")
    if not c.transit_encryption and not lab.security.allow_unencrypted_cache:
        raise LabError(src, "cache.transit_encryption", "awslab keeps cache traffic encrypted and behind an AUTH token (AWS FSBP ElastiCache.5)",
                       "to practise without it anyway, also set security.allow_unencrypted_cache=true (verify will WARN)")


def _is_identifier(text: str, max_len: int) -> bool:
    return 0 < len(text) <= max_len and text[0].isalpha() and all(ch.isalnum() or ch == "_" for ch in text) and text.isascii()


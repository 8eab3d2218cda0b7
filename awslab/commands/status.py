"""What a stack holds, told: each resource's record (`status -o json`, `up -o json`), the `status`
command's table, and the summary `up` prints once the stack is up (its secrets, its cost, what
answers behind the endpoints on the local AWS)."""

from __future__ import annotations

from awslab import ui
from awslab.commands import stacks
from awslab.commands._common import lab_cost, new_run, order_key, progress_run
from awslab.engine.context import Context
from awslab.engine.discovery import discover
from awslab.engine.run import Run
from awslab.errors import EXIT_OK
from awslab.spec import pricing
from awslab.spec.lab import Lab
from awslab.spec.model import Found
from awslab.spec.tags import TAG_CLASS, TAG_CREATED, TAG_EXPIRES, TAG_OWNER


def _endpoint(f: Found) -> str:
    if f.kind == "db-cluster":   # a Multi-AZ DB cluster: its writer endpoint, then its reader endpoint
        return f"{f.get('endpoint')}:{f.get('port')} (reader {f.get('reader_endpoint')})"
    if f.get("endpoint"):
        return f"{f.get('endpoint')}:{f.get('port')}"
    if f.kind == "instance":
        return f"private {f.get('private_ip')}, public {f.get('public_ip')}"
    return ""


def _engine_endpoint(f: Found) -> str:
    """The endpoint whose engine the local AWS lists for ``f`` (a cluster's: its writer endpoint)."""
    if f.kind == "db-cluster":
        return f"{f.get('endpoint')}:{f.get('port')}"
    return _endpoint(f)


def _local_engines(ctx: Context, run: Run, found: dict) -> dict[str, dict]:
    """On the local AWS: each endpoint's real engine (its status, and where it listens for the
    stack's host, the address `connect` gives)."""
    if not ctx.is_local:
        return {}
    from awslab.verify import live

    return live.endpoint_map(run, live.host_of(found)) or {}


def _local_suffix(info: dict | None) -> str:
    """' -> 127.0.0.1:N' where a real engine answers, else its status in brackets."""
    if not info:
        return ""
    if info.get("status") != "available":
        return f" ({info.get('status')})"
    lag = info.get("replica_lag_s")
    return f" -> {info['host']}:{info['port']}" + (f" (replica lag {lag:.2f} s)" if lag is not None else "")


def resource_records(found: dict[str, Found], engines: dict[str, dict] | None = None) -> list[dict]:
    """What `status -o json` and `up -o json` say of each resource; on the local AWS also where its
    real engine listens (``local_address``), as the text shows."""
    out = []
    for f in sorted(found.values(), key=lambda f: order_key(f.key)):
        record = {"key": f.key, "kind": f.kind, "id": f.id, "state": f.state, "endpoint": _endpoint(f) or None,
                  "created": f.created.isoformat() if f.created else None}
        record.update(_engine_fields((engines or {}).get(_engine_endpoint(f))))
        if f.kind == "db-cluster" and engines is not None:
            record["members"] = [{k: v for k, v in m.items() if k not in ("info", "since")}
                                 for m in cluster_members(f, engines)]
        out.append(record)
    return out


def _engine_fields(info: dict | None) -> dict:
    """Where a real engine listens on the local AWS, its status, and a replica's lag."""
    if not info:
        return {}
    out = {"local_address": f"{info['host']}:{info['port']}" if info.get("status") == "available" else None,
           "engine_status": info.get("status")}
    if info.get("replica_lag_s") is not None:
        out["replica_lag_s"] = info["replica_lag_s"]
    return out


def cluster_members(f: Found, engines: dict[str, dict]) -> list[dict]:
    """A Multi-AZ DB cluster's writer, then its readable standbys, each with its own endpoint and, on
    the local AWS, its engine: a reader's replica lag is what RDS's ReplicaLag metric shows per
    reader (the writer has none), read from the standby's engine as an instance replica's is."""
    writer = f.get("writer")
    out = []
    for m in sorted(f.get("members") or [], key=lambda m: (m["DBInstanceIdentifier"] != writer, m["DBInstanceIdentifier"])):
        ep = m.get("Endpoint") or {}
        endpoint = f"{ep['Address']}:{ep.get('Port')}" if ep.get("Address") else None
        info = engines.get(endpoint or "")
        created = m.get("InstanceCreateTime")
        out.append({"id": m["DBInstanceIdentifier"], "role": "writer" if m["DBInstanceIdentifier"] == writer else "reader",
                    "az": m.get("AvailabilityZone"), "state": m.get("DBInstanceStatus"), "endpoint": endpoint,
                    "created": created.isoformat() if created else None, **_engine_fields(info),
                    "info": info, "since": created})   # the last two for the table, not for JSON
    return out


def _secret_arns(found: dict[str, Found]) -> dict[str, str]:
    out = {}
    primary = found.get("db.primary") or found.get("db.cluster")
    if primary is not None and primary.get("secret_arn"):
        out["database master password (managed by RDS)"] = primary.get("secret_arn")
    token = found.get("cache.auth-token")
    if token is not None:
        out["cache AUTH token"] = token.get("arn")
    return out


def print_summary(ctx: Context, stack: str, lab: Lab, found: dict[str, Found], output: str) -> None:
    costs = lab_cost(lab, ctx)
    hourly, complete = pricing.total_hourly(costs)
    secrets = _secret_arns(found)
    if output == "json":
        ui.emit_json({"stack": stack, "lab": lab.name, "target": ctx.target, "region": ctx.region,
                      "resources": resource_records(found), "secrets": secrets,
                      "estimated_hourly_usd": round(hourly, 4), "cost_complete": complete,
                      "not_priced": pricing.not_priced(costs)})
        return
    rows = [[r["key"], r["id"], r["state"], r["endpoint"] or ""] for r in resource_records(found)]
    ui.emit(ui.table(["RESOURCE", "ID", "STATE", "ENDPOINT"], rows))
    if secrets:
        ui.emit("\nsecrets (values stay in Secrets Manager; read them with `aws secretsmanager get-secret-value`):")
        for what, arn in secrets.items():
            ui.emit(f"  {what}: {arn}")
    where = "the local AWS (no charge)" if ctx.is_local else f"AWS {ctx.region}"
    ui.emit(f"\nstack {stack} on {where}; on real AWS in {ctx.region} this lab costs {pricing.say(costs, ctx.region, about=True)}. "
            "Remove it with `awslab down`.")
    mapping = _engine_map(ctx, stack) if ctx.is_local else None
    if mapping:
        if lab.database.deployment == "cluster":
            cluster = found.get("db.cluster")
            info = mapping.get(f"{cluster.get('endpoint')}:{cluster.get('port')}") or {} if cluster else {}
            if info.get("status") in ("available", "starting"):
                ui.emit("Real PostgreSQL answers behind the Multi-AZ DB cluster's endpoints (a writer and two readable "
                        "standbys, each commit on one of them too) and real Redis behind the cache's: `awslab verify` "
                        "checks them, `awslab connect db|reader|cache` prints a psql / redis-cli line.")
            else:
                why = info.get("reason") or "no engine behind its endpoints"
                ui.emit(f"The local AWS runs the Multi-AZ DB cluster as a control plane only ({why}: its writer, "
                        "readers, endpoints, failover and final snapshot, its live checks SKIP); real Redis answers "
                        "behind the cache endpoint (`awslab connect cache`).")
            return
        if lab.database.engine == "postgres":
            ui.emit("Real PostgreSQL and Redis answer behind the endpoints: `awslab verify` checks them, "
                    "`awslab connect db|replica|cache` prints a psql / redis-cli line.")
            return
        ep = ((found["db.primary"].get("raw") or {}).get("Endpoint") or {}) if found.get("db.primary") else {}
        info = mapping.get(f"{ep.get('Address')}:{ep.get('Port')}") or {}
        if info.get("stands_in") and info.get("status") in ("available", "starting"):
            ui.emit(f"Real servers answer behind the endpoints: {info['stands_in']} (the system's mariadbd), and "
                    "Redis: `awslab verify` checks them, `awslab connect db|replica|cache` prints a mariadb / "
                    "redis-cli line.")
        else:
            why = info.get("reason") or "no MariaDB server on this machine"
            ui.emit(f"The local AWS runs {lab.database.engine} as a control plane only ({why}; its live checks "
                    "SKIP, `failover` has no server to fail over); real Redis answers behind the cache endpoint "
                    "(`awslab connect cache`). With MariaDB's server installed (Debian/Ubuntu: apt-get install "
                    f"mariadb-server) a real one answers; --target aws for a real {lab.database.engine}.")


def _engine_map(ctx: Context, stack: str) -> dict[str, dict] | None:
    from awslab.verify import live

    return live.endpoint_map(new_run(ctx, stack))


def status(ctx: Context, stack: str, output: str, progress: ui.Progress) -> int:
    """Every resource of the stack, its state and age."""
    run = progress_run(ctx, stack, "", progress)
    found = discover(run)
    engines = _local_engines(ctx, run, found) if found else {}
    record = (found["network.vpc"].get("tags") or {}) if "network.vpc" in found else {}
    owner, expires = record.get(TAG_OWNER), record.get(TAG_EXPIRES)
    costs = [line for lines in pricing.found_lines(found, ctx.region, run.kinds).values() for line in lines]
    if output == "json":
        hourly, complete = pricing.total_hourly(costs)
        ui.emit_json({"stack": stack, "target": ctx.target, "region": ctx.region, "owner": owner,
                      "created": record.get(TAG_CREATED), "expires": expires,
                      "time_left": stacks.time_left(expires) or None, "class": record.get(TAG_CLASS),
                      "resources": resource_records(found, engines), "estimated_hourly_usd": round(hourly, 4),
                      "cost_complete": complete, "not_priced": pricing.not_priced(costs)})
        return EXIT_OK
    if not found:
        ui.emit(f"stack {stack} on {ctx.target} ({ctx.region}): no resources")
        return EXIT_OK
    rows = []
    for f in sorted(found.values(), key=lambda f: order_key(f.key)):
        rows.append([f.key, f.kind, f.id, f.state, ui.age(f.created), _endpoint(f) + _local_suffix(engines.get(_engine_endpoint(f)))])
        if f.kind == "db-cluster":   # its members under it: which AZ writes, and how far each reader trails
            rows += [[f"  {f.key}.{m['role']}", f"cluster {m['role']}", f"{m['id']} ({m['az']})", m["state"] or "",
                      ui.age(m["since"]), (m["endpoint"] or "") + _local_suffix(m["info"])] for m in cluster_members(f, engines)]
    ui.emit(ui.table(["RESOURCE", "KIND", "ID", "STATE", "AGE", "ENDPOINT"], rows))
    ui.emit(f"\nstack {stack} on {ctx.target} ({ctx.region}): {len(found)} resources, "
            f"{pricing.say(costs, ctx.region, about=True)} on AWS now (priced from what exists)")
    if owner or record.get(TAG_CREATED):
        ui.emit(f"owner {owner or 'unknown'}, created {record.get(TAG_CREATED) or 'unknown'}")
    ui.emit(f"expires {expires} ({stacks.time_left(expires)}); `awslab sweep` removes it after that" if expires else
            "no expiry (`awslab up --ttl 4h` sets one)")
    return EXIT_OK

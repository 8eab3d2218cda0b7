"""`awslab engines`: the engines RDS offers, what each supports (versions, Multi-AZ as an
instance or as a DB cluster, read replicas, Blue/Green), each figure with its AWS source
(spec/catalog.py), and what awslab's labs and the local AWS do with each."""

from __future__ import annotations

from awslab import ui
from awslab.spec import catalog


def rows() -> list[dict]:
    return [{**e, "versions": list(e["versions"]), "lab": e["engine"] in catalog.DB_ENGINES} for e in catalog.RDS_ENGINES]


def show(output: str) -> int:
    engines = rows()
    if output == "json":
        ui.emit_json({"engines": engines, "sources": catalog.SOURCES})
        return 0
    yes = lambda v: "yes" if v else "no"   # noqa: E731
    ui.emit(ui.table(["ENGINE", "VERSIONS", "MULTI-AZ INSTANCE", "MULTI-AZ CLUSTER", "READ REPLICAS", "BLUE/GREEN", "IN A LAB"],
                     [[e["engine"], ", ".join(e["versions"]), yes(e["multi_az_instance"]), yes(e["multi_az_cluster"]),
                       str(e["max_replicas"]) if e["max_replicas"] else "none", yes(e["blue_green"]),
                       "yes: --set database.engine=" + e["engine"] if e["lab"] else "no"] for e in engines]))
    ui.emit("\nOn the local AWS:")
    for e in engines:
        ui.emit(f"  {e['engine']:<18} {e['local']}")
    ui.emit("\nRead replicas: per source instance (SQL Server Standard, Express and Web have none; Aurora's are "
            "Aurora Replicas of a cluster). A Multi-AZ DB cluster is a writer and two readable standbys in three AZs "
            "(MySQL and PostgreSQL only); a Multi-AZ instance has one standby that serves nothing.")
    ui.emit("Sources: " + "; ".join(f"{k}: {v}" for k, v in catalog.SOURCES.items()))
    return 0

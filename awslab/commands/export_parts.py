"""What every part of the exported template writes the same way (``export.py`` and
``export_cluster.py``): a ``Fn::Sub`` or a ``Ref``, awslab's tags on a resource, an engine's minor
version."""

from __future__ import annotations

from awslab.spec import catalog
from awslab.spec.lab import Lab
from awslab.spec.tags import TAG_LAB, TAG_RESOURCE, TAG_STACK


def sub(text: str) -> dict:
    return {"Fn::Sub": text}


def ref(name: str) -> dict:
    return {"Ref": name}


def tags(key: str, lab: Lab, name: str | None = None) -> list[dict]:
    out = [{"Key": TAG_STACK, "Value": ref("StackName")}, {"Key": TAG_LAB, "Value": lab.name},
           {"Key": TAG_RESOURCE, "Value": key}]
    if name is not None:
        out.append({"Key": "Name", "Value": sub(name)})
    return out


def minor(engine: str, version: str) -> str:
    """The minor RDS picks for a major (a template names the version it gets; cfn-lint flags majors)."""
    return catalog.DB_ENGINES.get(engine, {}).get("default_minors", {}).get(version, version)

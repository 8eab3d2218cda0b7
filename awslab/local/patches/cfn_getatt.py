"""CloudFormation's `Fn::GetAtt` with a dotted attribute name, in every form a template writes it.

An attribute name may hold dots (`PrimaryEndPoint.Address` of an ElastiCache replication group,
`Endpoint.Address` of a DB instance). CloudFormation splits the short form `!GetAtt
Cache.PrimaryEndPoint.Address` at the first dot only (resource, attribute); moto split it at every
dot, so the stack's outputs could not be resolved and every DescribeStacks of it failed. The string
form (`Fn::GetAtt: Cache.PrimaryEndPoint.Address`) is read the same way, and the short list form
(`!GetAtt [Cache, PrimaryEndPoint.Address]`), which moto kept as YAML nodes, as the list it is.

Part of awslab's layer over moto (its patches name the rows of ``GAPS.md`` they close).
"""

from __future__ import annotations

from typing import Any

from awslab.local.patches._patch import patch


GAP = "cfn-getatt-dots"


# moto registers the constructor by the name each module imported, when it parses a template.
@patch("moto.cloudformation.models", gap=GAP, phase="services", kind="replace")
@patch("moto.cloudformation.responses", gap=GAP, phase="services", kind="replace")
def yaml_tag_constructor(loader: Any, tag: Any, node: Any) -> Any:
    import yaml
    from moto.cloudformation import utils

    if tag == "!GetAtt" and isinstance(node, yaml.ScalarNode):
        return {"Fn::GetAtt": node.value.split(".", 1)}
    if tag == "!GetAtt" and isinstance(node, yaml.SequenceNode):   # moto kept YAML nodes, not strings
        return {"Fn::GetAtt": loader.construct_sequence(node)}
    return utils.yaml_tag_constructor(loader, tag, node)


@patch("moto.cloudformation.models:Stack", "_parse_template", gap=GAP, phase="services")
def parse_template(original, self) -> None:
    original(self)
    self.template_dict = _lists(self.template_dict)   # what the resources and the outputs are read from


def _lists(node: Any) -> Any:
    """The template with every string-form ``Fn::GetAtt`` as CloudFormation reads it: [resource, attribute]."""
    if isinstance(node, dict):
        out = {k: _lists(v) for k, v in node.items()}
        if isinstance(out.get("Fn::GetAtt"), str):
            out["Fn::GetAtt"] = out["Fn::GetAtt"].split(".", 1)
        return out
    if isinstance(node, list):
        return [_lists(v) for v in node]
    return node

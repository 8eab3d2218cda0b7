"""CloudFormation's `Fn::GetAtt` with a dotted attribute name, in every form a template writes it.

An attribute name may hold dots (`PrimaryEndPoint.Address` of an ElastiCache replication group,
`Endpoint.Address` of a DB instance). CloudFormation splits the short form `!GetAtt
Cache.PrimaryEndPoint.Address` at the first dot only (resource, attribute); moto split it at every
dot, so the stack's outputs could not be resolved and every DescribeStacks of it failed. The string
form (`Fn::GetAtt: Cache.PrimaryEndPoint.Address`) is read the same way, and the short list form
(`!GetAtt [Cache, PrimaryEndPoint.Address]`), which moto kept as YAML nodes, as the list it is.

Part of awslab's layer over moto (the table of gaps is in ``awslab.local.patches``).
"""

from __future__ import annotations

from typing import Any


def apply() -> None:
    import yaml
    from moto.cloudformation import models, responses, utils

    def yaml_tag_constructor(loader: Any, tag: Any, node: Any) -> Any:
        if tag == "!GetAtt" and isinstance(node, yaml.ScalarNode):
            return {"Fn::GetAtt": node.value.split(".", 1)}
        if tag == "!GetAtt" and isinstance(node, yaml.SequenceNode):   # moto kept YAML nodes, not strings
            return {"Fn::GetAtt": loader.construct_sequence(node)}
        return utils.yaml_tag_constructor(loader, tag, node)

    # moto registers the constructor by the name each module imported, when it parses a template.
    models.yaml_tag_constructor = responses.yaml_tag_constructor = yaml_tag_constructor

    orig_parse = models.Stack._parse_template

    def _parse_template(self) -> None:
        orig_parse(self)
        self.template_dict = _lists(self.template_dict)   # what the resources and the outputs are read from

    models.Stack._parse_template = _parse_template


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

"""awslab's layer over moto: make the local AWS behave like AWS where it matters to the lab.

One module per service (``rds``, ``elasticache``, ``cache_parameters``, ``maintenance``, ``ec2``,
``iam``, ``kms``, ``tagging``, ``ssm``, ``cloudformation`` and its ``cfn_*`` companions (``cfn_db_cluster``:
the DB cluster's types), ``stacksets``), ``core`` for moto's request path, their shared helpers and the emulated offering in ``_base``. Each module declares its patches where they
are written, with the ``@patch`` decorator of ``_patch`` (target, gap closed, phase); importing the
modules registers them and ``apply()`` below applies them: phase by phase (``_patch.PHASES``:
objects, states, rejects, answers, services), within a phase in the order registered, each once,
failing loudly if moto lacks a target. ``registry.patches()`` lists them in that order.

Loaded by the local server process (``awslab.local.server``) and so by the test fixtures, never by
the CLI itself (the CLI starts quickly). Pinned to the moto version range in pyproject.toml: the
patches wrap moto's backends by method name. Durations come from ``latency.py``.

moto's own tests are the layer's regression test: ``.ci/conformance`` runs them on plain moto and
with ``apply()``, and every difference is fixed or explained in tests/conformance/DIFFERENCES.md.

Every row of shared/MOTO-GAPS.md, and every gap found since, has a stable id and its status in
``GAPS.md`` beside this file; each patch names the rows it closes, and
``tests/local/test_patch_registry.py`` keeps the two in step.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

from awslab.local.patches import (  # noqa: F401 - importing a module registers its patches
    cache_parameters,
    core,
    ec2,
    elasticache,
    iam,
    kms,
    maintenance,
    parameter_groups,
    rds,
    rds_clusters,
    rds_versions,
    ssm,
    tagging,
)
from awslab.local.patches._patch import registry

# CloudFormation's layer (stacks, their resources and StackSets). Importing moto's CloudFormation
# imports every service it can make resources of (API Gateway, Auto Scaling, ...): a quarter of the
# local AWS's start, for a server that may never see a stack. So these modules are imported, and
# their patches applied, when moto's CloudFormation first is: at the first CloudFormation request,
# or when a saved state holding stacks is loaded.
CLOUDFORMATION = ("cfn_db_cluster", "cfn_getatt", "cfn_lifecycle", "cfn_resources", "cfn_updates", "cloudformation",
                  "stackset_operations", "stackset_targets", "stacksets")


def load_all() -> None:
    """Register every patch, CloudFormation's too (what ``registry.patches()`` then lists)."""
    for name in CLOUDFORMATION:
        importlib.import_module(f"{__name__}.{name}")


def apply() -> None:
    """Apply every patch once (idempotent). Must run before the first request is served;
    CloudFormation's are applied as moto's CloudFormation is imported (before it serves)."""
    # moto reads this when its IAM backend is first created; AWS always has the managed policies.
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    registry.apply()
    if "moto.cloudformation" in sys.modules:
        _cloudformation_layer()
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport("moto.cloudformation", _cloudformation_layer))


def _cloudformation_layer() -> None:
    load_all()
    registry.apply()
    core.forget_methods()   # what a response class has may have changed


class _AfterImport:
    """A meta path finder that runs ``then`` once the module ``name`` has been executed (under the
    import lock, before any importer gets the module), and then leaves ``sys.meta_path``."""

    def __init__(self, name: str, then) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        run, then, me = spec.loader.exec_module, self.then, self

        def exec_module(module) -> None:
            run(module)
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(me)
            then()

        spec.loader.exec_module = exec_module
        return spec

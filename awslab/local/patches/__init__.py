"""awslab's layer over moto: make the local AWS behave like AWS where it matters to the lab.

One module per service (``rds``, ``elasticache``, ``cache_parameters``, ``maintenance``, ``ec2``,
``iam``, ``tagging``, ``ssm``, ``cloudformation`` and its ``cfn_*`` companions (``cfn_db_cluster``:
the DB cluster's types), ``stacksets``), their shared helpers and the emulated offering in ``_base``. Each module declares its patches where they
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

import os

from awslab.local.patches import (  # noqa: F401 - importing a module registers its patches
    cache_parameters,
    cfn_db_cluster,
    cfn_getatt,
    cfn_lifecycle,
    cfn_resources,
    cfn_updates,
    cloudformation,
    ec2,
    elasticache,
    iam,
    maintenance,
    parameter_groups,
    rds,
    rds_clusters,
    rds_versions,
    ssm,
    stackset_operations,
    stackset_targets,
    stacksets,
    tagging,
)
from awslab.local.patches._patch import registry


def apply() -> None:
    """Apply every patch once (idempotent). Must run before the first request is served."""
    # moto reads this when its IAM backend is first created; AWS always has the managed policies.
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    registry.apply()

"""Faults real AWS produces (throttling, 5xx, dropped connections, lost responses, "not found"
right after a create), injected by awslab's seeded injector: the lifecycle still completes,
creates nothing twice and leaves nothing behind but the final snapshot.

All 50 seeds run in every suite (about 75 s of the suite on 2 cores with four workers);
``AWSLAB_TEST_FAULT_SEEDS=4`` runs fewer while iterating, ``-m faults`` just these tests.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from conftest import copies, ec2_tagged, stack_tagged

from awslab.engine import faults

pytestmark = [pytest.mark.lifecycle, pytest.mark.faults]
SEEDS = range(1, int(os.environ.get("AWSLAB_TEST_FAULT_SEEDS", "50")) + 1)
RATE = 0.2


@pytest.mark.parametrize("seed", SEEDS)
def test_faults__lifecycle_completes_creates_nothing_twice_and_leaves_only_the_final_snapshot(
        awslab, aws, stack, monkeypatch, seed):
    monkeypatch.setenv(faults.ENV, f"rate={RATE},seed={seed}")
    before = Counter(faults.INJECTED)

    up = awslab("up", "week6", "--name", stack)
    assert up.code == 0, up.err
    made = copies(aws, stack)
    assert made and max(made.values()) == 1, {k: n for k, n in made.items() if n > 1}
    assert {k for _, k in made} >= {"network.vpc", "network.subnet.public", "network.igw", "host.instance",
                                     "db.primary", "db.replica.1", "cache.group"}

    again = awslab("up", "week6", "--name", stack)
    assert again.code == 0, again.err
    assert copies(aws, stack) == made
    verify = awslab("verify", "--name", stack)
    assert verify.code == 0, verify.out + verify.err

    down = awslab("down", "--name", stack, "--yes")
    assert down.code == 0, down.err
    remaining = {kind: items for kind, items in ec2_tagged(aws, stack).items() if items}
    assert remaining == {}, down.err
    left = stack_tagged(aws, stack)
    assert len(left) == 1 and ":snapshot:" in left[0] and "-final-" in left[0], left

    injected = Counter(faults.INJECTED) - before
    # The run met real trouble: throttling and lost responses at least, and many faults in all.
    assert injected["throttle"] and injected["lost"] and sum(injected.values()) >= 20, injected

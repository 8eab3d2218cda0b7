"""SIGKILL at every step boundary of `up` and of `down` (each a separate run), then a rerun:
it converges, nothing is created twice, and nothing is left but the final snapshot.

The kill comes from outside, as from `kill -9` or a closed laptop: the test reads awslab's
progress lines and kills the process as soon as the n-th step has reported done.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from awslab import topology
from awslab.lab import load_lab
from conftest import ec2_tagged, stack_tagged
from test_faults import copies

pytestmark = pytest.mark.lifecycle
STEPS = len(topology.desired(load_lab("week6"), "x", "us-east-1"))
DONE_WORDS = {"up": ("created ", "completed "), "down": ("deleted ",)}


def run_and_kill_after(command: list[str], n: int, done_words: tuple[str, ...]) -> tuple[int, str]:
    """Run awslab; SIGKILL it once ``n`` steps have reported done (n=0: as soon as it starts a step)."""
    proc = subprocess.Popen([sys.executable, "-m", "awslab", *command], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    seen, lines = 0, []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if n == 0 and ("creating " in line or "deleting " in line):
                break
            if "]" in line and line.split("]", 1)[1].lstrip().startswith(done_words):
                seen += 1
                if seen >= n:
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    return seen, "".join(lines)


@pytest.mark.parametrize("boundary", range(STEPS))
def test_sigkill_during_up__a_rerun_converges_without_duplicates_and_down_leaves_nothing(awslab, aws, local, stack, boundary):
    seen, log = run_and_kill_after(["up", "week6", "--name", stack], boundary, DONE_WORDS["up"])
    assert seen == boundary, log

    again = awslab("up", "week6", "--name", stack)
    assert again.code == 0, log + again.err
    made = copies(aws, stack)
    assert max(made.values()) == 1, {k: n for k, n in made.items() if n > 1}
    assert awslab("verify", "--name", stack).code == 0

    down = awslab("down", "--name", stack, "--yes")
    assert down.code == 0, down.err
    assert all(not items for items in ec2_tagged(aws, stack).values())
    left = stack_tagged(aws, stack)
    assert len(left) == 1 and "-final-" in left[0], left


@pytest.mark.parametrize("boundary", range(STEPS))
def test_sigkill_during_down__a_rerun_finishes_and_keeps_one_final_snapshot(awslab, aws, local, stack, boundary):
    assert awslab("up", "week6", "--name", stack).code == 0
    seen, log = run_and_kill_after(["down", "--name", stack, "--yes"], boundary, DONE_WORDS["down"])
    assert seen == boundary, log

    again = awslab("down", "--name", stack, "--yes")
    assert again.code == 0, log + again.err
    assert all(not items for items in ec2_tagged(aws, stack).values())
    left = stack_tagged(aws, stack)
    assert len(left) == 1 and "-final-" in left[0], (log, again.err, left)
    assert awslab("down", "--name", stack, "--yes").code == 0

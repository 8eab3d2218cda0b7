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
from conftest import copies, ec2_tagged, interrupt_when, stack_tagged

from awslab.spec import topology
from awslab.spec.lab import load_lab

pytestmark = [pytest.mark.lifecycle, pytest.mark.kill]
STEPS = len(topology.desired(load_lab("week6"), "x", "us-east-1"))
DONE_WORDS = {"up": ("created ", "updated "), "down": ("deleted ",)}


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


@pytest.mark.parametrize("boundary", [2, 8, 13])
def test_down_after_a_killed_up__removes_what_was_made(awslab, aws, local, stack, boundary):
    seen, log = run_and_kill_after(["up", "week6", "--name", stack], boundary, DONE_WORDS["up"])
    assert seen == boundary, log
    down = awslab("down", "--name", stack, "--yes")
    assert down.code == 0, log + down.err
    assert all(not items for items in ec2_tagged(aws, stack).values())
    assert all("-final-" in arn for arn in stack_tagged(aws, stack))


@pytest.mark.parametrize("boundary", [3, 10])
def test_up_after_a_killed_down__rebuilds_the_lab(awslab, aws, local, stack, boundary):
    assert awslab("up", "week6", "--name", stack).code == 0
    seen, log = run_and_kill_after(["down", "--name", stack, "--yes", "--skip-final-snapshot"], boundary, DONE_WORDS["down"])
    assert seen == boundary, log
    again = awslab("up", "week6", "--name", stack)
    assert again.code == 0, log + again.err
    assert max(copies(aws, stack).values()) == 1
    assert awslab("verify", "--name", stack).code == 0
    assert awslab("down", "--name", stack, "--yes", "--skip-final-snapshot").code == 0
    assert stack_tagged(aws, stack) == []


def test_ctrl_c_during_down__exits_130_says_what_was_in_flight_and_a_rerun_finishes(awslab, aws, local, stack, latency):
    assert awslab("up", "week6", "--name", stack).code == 0
    latency("realistic", 0.01)   # deletes take long enough to be interrupted in the middle
    code, err = interrupt_when(["down", "--name", stack, "--yes"], lambda line: "waiting" in line and "db." in line)
    assert code == 130, err
    assert "in flight:" in err and "rerun the same command" in err
    latency("instant")
    again = awslab("down", "--name", stack, "--yes")
    assert again.code == 0, again.err
    assert all(not items for items in ec2_tagged(aws, stack).values())
    # A terminated instance stays listed for a while, as on AWS (it no longer bills).
    terminated = {f"arn:aws:ec2:us-east-1:123456789012:instance/{i['InstanceId']}"
                  for r in aws("ec2").describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["terminated"]}])["Reservations"]
                  for i in r["Instances"]}
    left = [arn for arn in stack_tagged(aws, stack) if arn not in terminated]
    assert len(left) == 1 and "-final-" in left[0], left

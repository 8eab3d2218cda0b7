"""Students' commands forked from a prepared process (awslab.commands.launcher): each is what
``python -m awslab`` would have been, and whatever goes wrong with the launcher, the caller starts
the command itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from awslab.commands import launcher


def _spawn(launch: launcher.Launcher, argv: list[str], within_s: float = 30.0) -> launcher.Launched:
    """Spawn once the launcher is ready (spawn never waits for it)."""
    deadline = time.monotonic() + within_s
    while (proc := launch.spawn(argv)) is None:
        assert time.monotonic() < deadline, "the launcher was not ready in time"
        time.sleep(0.02)
    return proc


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that accepts connections and never answers: a command asking it waits."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def _waiting_argv(port: int) -> list[str]:
    # `up` on an account asks STS who it is first: with --yes, before anything changes.
    return ["up", "week6", "--target", "aws", "--endpoint-url", f"http://127.0.0.1:{port}", "--region", "us-east-1",
            "--yes"]


def _sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += int(fd) > 2 and os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except FileNotFoundError:   # closed since it was listed
            pass
    return count


def _started(pid: int, within_s: float = 30.0) -> None:
    """Until the command has connected (its socket is the sign it is past its start)."""
    deadline = time.monotonic() + within_s
    while not _sockets(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["up", "nosuchlab", "--yes"],
                                  ["up", "week6", "--set", "database.nope=1", "--yes"], ["nosuchcommand"]],
                         ids=["version", "help", "unknown-lab", "bad-set", "unknown-command"])
def test_a_launched_command_says_and_exits_as_python_m_awslab_does(argv):
    ref = subprocess.run([sys.executable, "-m", "awslab", *argv], capture_output=True, text=True, timeout=60)
    with launcher.Launcher("up") as launch:
        proc = _spawn(launch, argv)
        out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (ref.returncode, ref.stdout, ref.stderr)
    assert out or err


def test_a_launched_command_is_a_process_of_its_own_in_the_callers_environment(silent, monkeypatch, tmp_path):
    """Its own pid and session, stdin /dev/null, the caller's directory and environment; Ctrl-C
    (through the launcher) ends it as it ends `python -m awslab`: exit 130, nothing changed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWSLAB_LAUNCHER_TEST", "seen")
    with launcher.Launcher("up") as launch:
        proc = _spawn(launch, _waiting_argv(silent))
        _started(proc.pid)
        assert os.getsid(proc.pid) == proc.pid != os.getpid()
        assert os.readlink(f"/proc/{proc.pid}/fd/0") == "/dev/null"
        assert os.readlink(f"/proc/{proc.pid}/cwd") == str(tmp_path)
        assert b"AWSLAB_LAUNCHER_TEST=seen" in Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        with pytest.raises(subprocess.TimeoutExpired):
            proc.communicate(timeout=0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    ref = subprocess.Popen([sys.executable, "-m", "awslab", *_waiting_argv(silent)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    _started(ref.pid)
    ref.send_signal(signal.SIGINT)
    ref_out, ref_err = ref.communicate(timeout=60)
    # Where the interrupt lands (inside Click: "aborted", or ours: "interrupted before any change")
    # is timing; that it ends the command with nothing changed is not.
    for code, said, told in ((proc.returncode, out, err), (ref.returncode, ref_out, ref_err)):
        assert (code, said) == (130, "") and told.strip().splitlines()[-1].endswith(": nothing was changed"), told


def test_a_signal_reaches_only_a_child_not_yet_reaped():
    with launcher.Launcher("up") as launch:
        proc = _spawn(launch, ["--version"])
        proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert launch.signal(proc.pid, 0) is False      # reaped: its pid may be another process's now
        assert launch.signal(os.getpid(), 0) is False   # never its child


def test_no_launcher__when_turned_off_or_the_environment_or_directory_changed(monkeypatch, tmp_path):
    monkeypatch.setenv(launcher.ENV, "off")
    assert not launcher.enabled()
    monkeypatch.delenv(launcher.ENV)
    assert launcher.enabled()
    with launcher.Launcher("up") as launch:
        _spawn(launch, ["--version"]).communicate(timeout=60)
        monkeypatch.setenv("AWSLAB_LAUNCHER_TEST", "changed")
        assert launch.spawn(["--version"]) is None
        monkeypatch.delenv("AWSLAB_LAUNCHER_TEST")
        monkeypatch.chdir(tmp_path)
        assert launch.spawn(["--version"]) is None


def test_a_launcher_gone__its_running_child_ends_as_a_failure_and_the_caller_starts_commands_itself(silent):
    with launcher.Launcher("up") as launch:
        proc = _spawn(launch, _waiting_argv(silent))
        _started(proc.pid)
        launch._proc.kill()
        launch._proc.wait()
        os.kill(proc.pid, signal.SIGKILL)   # an orphan now: nobody is left to reap it and say how it ended
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1 and "the launcher of this command stopped" in err
        assert launch.spawn(["--version"]) is None


def test_a_launcher_that_never_gets_ready_is_never_asked(monkeypatch):
    monkeypatch.setattr(launcher.sys, "executable", "/bin/false")   # exits at once, never ready
    with launcher.Launcher("up") as launch:
        time.sleep(0.3)
        assert launch.spawn(["--version"]) is None
        assert launch.spawn(["--version"]) is None


def test_where_the_launchers_socket_cannot_be_made__every_command_is_started_the_ordinary_way(monkeypatch):
    def no_seqpacket(*a, **kw):
        raise OSError(93, "Protocol not supported")   # macOS: no SOCK_SEQPACKET for AF_UNIX

    monkeypatch.setattr(launcher.socket, "socketpair", no_seqpacket)
    with launcher.Launcher("up") as launch:
        assert launch.spawn(["--version"]) is None
        assert launch.signal(os.getpid(), 0) is False

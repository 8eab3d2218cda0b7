"""What every part of the engines shares: where they listen, how long they may take, the names of
their files, and the two exceptions (not installed; failed)."""

from __future__ import annotations

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
TOOL_TIMEOUT_S = 120.0
PORT_ATTEMPTS = 3
SECRET_FILE = "secret.json"
SNAPSHOT_META = "snapshot.json"


class EngineUnavailable(Exception):
    """An engine's binaries or client library are not installed; str(e) is a one-line reason."""


class EngineError(RuntimeError):
    """An engine failed to start, copy, promote or stop; the message names the log to read."""

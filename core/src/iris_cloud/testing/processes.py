"""Stopping the test servers a test suite started as child processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

__all__ = ["stop_process"]


def stop_process(proc: subprocess.Popen[Any], *, timeout: float = 5.0, group: bool = False) -> None:
    """SIGTERM ``proc``, and SIGKILL it if it has not exited within ``timeout`` seconds.

    ``group`` signals its whole process group (start it with
    ``start_new_session=True``), for launchers such as npx that run the
    server as a grandchild.
    """
    if proc.poll() is not None:
        return

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(timeout)

"""Helpers of the interop tests: names, and running the Node clients.

The Node clients are the versions pinned in the repository's ``package.json``
/ ``package-lock.json`` (``npm ci``); each script in ``js/`` takes a JSON plan
on its command line and prints one JSON document.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

from iris_cloud.testing import require_server

REPO = Path(__file__).resolve().parents[2]
JS = Path(__file__).resolve().parent / "js"


def unique(prefix: str) -> str:
    """A fresh entity name (queues, topics and subscriptions are shared per session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def run_node(
    script: str, plan: dict[str, Any], *, timeout: float = 90, env: dict[str, str] | None = None
) -> Any:
    """Run ``js/<script>`` with ``plan`` (and ``env`` added) and return its JSON output."""
    node = shutil.which("node")
    if node is None:
        require_server("node is not on PATH (the interop env needs Node 20)")
    if not (REPO / "node_modules").is_dir():
        require_server("the Node clients are not installed: run `npm ci` at the repository root")
    done = subprocess.run(
        [str(node), str(JS / script), json.dumps(plan)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])

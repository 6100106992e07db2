"""Patient data at rest (issue 12 §3), end to end: the demo under umask 000.

The demo writes everything the project can write on one host: ``local://``
queues, ``file://`` image and result stores with their sidecars, saved PDF
reports and the simulator's state database, all with sample patient data.
Every file must come out 0600 and every directory 0700.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from iris_cloud_simulator.demo import run_demo


def test_the_demo_leaves_only_private_files(tmp_path: Path) -> None:
    base = tmp_path / "demo"
    old = os.umask(0o000)
    try:
        orders, ok = run_demo(base, count=2, timeout=90.0)
    finally:
        os.umask(old)
    assert ok, [o.failures for o in orders]
    found = {p: stat.S_IMODE(p.lstat().st_mode) for p in [base, *base.rglob("*")]}
    assert any(p.name == "simulator.sqlite3" for p in found)
    assert any(p.suffix == ".pdf" for p in found)
    wrong = {
        str(p.relative_to(tmp_path)): oct(mode)
        for p, mode in found.items()
        if mode != (0o700 if p.is_dir() else 0o600)
    }
    assert not wrong, f"readable by others: {wrong}"

"""save_result against a hostile result and a hostile results directory.

A sender controls every value a template renders (names, ids) and can send
any number of results for one order; whoever can write into the results
directory can plant symlinks there. Neither may make a save write outside
the target, report a planted file as saved, fail on a long name, or make
every later save slower.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from iris_cloud.errors import AlreadyExists, ConfigurationError
from iris_cloud.model import OrderResult, sample_files
from iris_cloud.providers.memory import MemoryStore
from iris_cloud.workflows import results as results_module
from iris_cloud.workflows.results import RECENT_VERSIONS, save_result

pytestmark = pytest.mark.timeout(120)

PDF = b"%PDF-1.4 hostile\n%%EOF\n"


def result(document: bytes = PDF, **changes: Any) -> OrderResult:
    data = json.loads(next(f for f in sample_files() if f.name == "result-final.json").read_bytes())
    data["ResultsDocument"]["Content"] = base64.b64encode(document).decode()
    data["Site"]["LocalId"] = "Clinic"
    data["Order"]["LocalId"] = "ORD-1"
    for path, value in changes.items():
        target = data
        *parents, leaf = path.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = value
    return OrderResult.model_validate(data)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# -- symlinked directories: checked before anything is created ---------------------------


@pytest.mark.parametrize("template", ["{clientLocalId}/new/deeper/{orderLocalId}.pdf"])
def test_a_symlinked_directory_is_refused_before_any_directory_is_created(
    tmp_path: Path, template: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "Clinic")
    with pytest.raises(ConfigurationError, match="symbolic link"):
        save_result(result(), target, template)
    assert list(outside.iterdir()) == []  # the old code created outside/new/deeper first


def test_a_link_deeper_down_is_refused_with_nothing_created_above_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    (target / "a").mkdir(parents=True)
    os.symlink(outside, target / "a" / "Clinic")
    before = tree(target)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        save_result(result(), target, "a/{clientLocalId}/x/{orderLocalId}.pdf")
    assert tree(target) == before and list(outside.iterdir()) == []


def test_a_file_in_the_way_of_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Clinic").write_bytes(b"not a directory")
    with pytest.raises(ConfigurationError, match="not a directory"):
        save_result(result(), tmp_path, "{clientLocalId}/{orderLocalId}.pdf")


def test_the_target_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "results")
    path = save_result(result(), tmp_path / "results", "{clientLocalId}/{orderLocalId}.pdf")
    assert path == str(real / "Clinic" / "ORD-1.pdf")
    assert (real / "Clinic" / "ORD-1.pdf").read_bytes() == PDF


# -- planted files -----------------------------------------------------------------------


def plant(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside.pdf"
    outside.write_bytes(PDF)  # identical content
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "ORD-1.pdf")
    return target, outside


def test_a_planted_symlink_with_identical_content_is_not_reported_as_saved(
    tmp_path: Path,
) -> None:
    target, outside = plant(tmp_path)
    path = save_result(result(), target)
    assert path == str(target / "ORD-1-2.pdf")
    saved = Path(path)
    assert not saved.is_symlink() and saved.read_bytes() == PDF
    assert (target / "ORD-1.pdf").is_symlink() and outside.read_bytes() == PDF
    # A redelivery now finds the real copy.
    assert save_result(result(), target) == path


def test_replace_replaces_a_planted_symlink_not_its_target(tmp_path: Path) -> None:
    target, outside = plant(tmp_path)
    path = save_result(result(b"%PDF new"), target, on_conflict="replace")
    assert path == str(target / "ORD-1.pdf")
    assert not Path(path).is_symlink() and Path(path).read_bytes() == b"%PDF new"
    assert outside.read_bytes() == PDF


def test_error_mode_refuses_a_planted_symlink(tmp_path: Path) -> None:
    target, outside = plant(tmp_path)
    with pytest.raises(AlreadyExists) as exc:
        save_result(result(), target, on_conflict="error")
    assert "ORD-1" not in str(exc.value)  # no rendered (patient) name in errors
    assert outside.read_bytes() == PDF


def test_a_directory_with_the_file_name_is_skipped_or_refused(tmp_path: Path) -> None:
    (tmp_path / "ORD-1.pdf").mkdir()
    assert save_result(result(), tmp_path) == str(tmp_path / "ORD-1-2.pdf")
    with pytest.raises(AlreadyExists):
        save_result(result(b"%PDF other"), tmp_path, "{orderLocalId}.pdf", on_conflict="replace")


# -- long names ----------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\N{GRINNING FACE}", "\N{CJK UNIFIED IDEOGRAPH-4E00}", "é"])
def test_names_are_capped_in_bytes(tmp_path: Path, char: str) -> None:
    # 100 emoji are 400 bytes: over the 255-byte file-name limit of every common file system.
    r = result(**{"Patient.Name": {"First": char * 100, "Last": char * 100}})
    template = "{patientLastName}/{patientLastName}_{patientFirstName}_{orderLocalId}.pdf"
    path = save_result(r, tmp_path, template)
    assert path is not None
    saved = Path(path)
    assert saved.read_bytes() == PDF and saved.name.endswith(".pdf")
    for part in saved.relative_to(tmp_path).parts:
        assert len(part.encode("utf-8")) <= 200
    other = save_result(result(b"%PDF v2", **{"Patient.Name": {"Last": char * 100}}), tmp_path)
    assert other is not None
    numbered = save_result(
        result(b"%PDF v3", **{"Patient.Name": {"First": char * 100, "Last": char * 100}}),
        tmp_path,
        template,
    )
    assert numbered is not None and numbered.endswith("-2.pdf")


# -- numbering stays cheap -----------------------------------------------------------------


def test_numbering_cost_does_not_grow_with_the_number_of_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real_open, real_stat = os.open, os.stat

    def counting_open(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        return real_open(*args, **kwargs)

    def counting_stat(*args: Any, **kwargs: Any) -> os.stat_result:
        calls["n"] += 1
        return real_stat(*args, **kwargs)

    def cost_of_save(i: int) -> int:
        # Same size, different content: the worst case (sizes cannot tell them apart).
        doc = PDF + f"{i:06d}".encode()
        monkeypatch.setattr(results_module.os, "open", counting_open)
        monkeypatch.setattr(results_module.os, "stat", counting_stat)
        calls["n"] = 0
        try:
            path = save_result(result(doc), tmp_path)
        finally:
            monkeypatch.setattr(results_module.os, "open", real_open)
            monkeypatch.setattr(results_module.os, "stat", real_stat)
        assert path is not None and Path(path).read_bytes() == doc
        return calls["n"]

    costs = [cost_of_save(i) for i in range(300)]
    # Before: one stat and one full read per earlier version (~600 calls at 300).
    assert max(costs[250:]) <= max(costs[RECENT_VERSIONS + 2 : 40]) + 20
    assert len(list(tmp_path.iterdir())) == 300
    # A redelivery of a recent version is still recognised.
    assert save_result(result(PDF + b"000295"), tmp_path) == str(tmp_path / "ORD-1-296.pdf")
    assert len(list(tmp_path.iterdir())) == 300


def test_store_numbering_cost_does_not_grow(tmp_path: Path) -> None:
    class Counting(MemoryStore):
        calls = 0

        def info(self, name: str) -> Any:
            Counting.calls += 1
            return super().info(name)

        def get(self, name: str) -> bytes:
            Counting.calls += 1
            return super().get(name)

    store = Counting(f"hostile-{tmp_path.name}")

    def cost(i: int) -> int:
        Counting.calls = 0
        save_result(result(PDF + f"{i:06d}".encode()), store)
        return Counting.calls

    costs = [cost(i) for i in range(300)]
    assert max(costs[250:]) <= max(costs[RECENT_VERSIONS + 2 : 40]) + 20
    assert sum(1 for _ in store.list()) == 300


# -- concurrency and odd file systems ------------------------------------------------------


def test_concurrent_corrections_are_all_kept(tmp_path: Path) -> None:
    docs = [PDF + f"correction {i}".encode() for i in range(8)]
    paths: list[str | None] = [None] * len(docs)
    start = threading.Barrier(len(docs))

    def save(i: int) -> None:
        start.wait()
        paths[i] = save_result(result(docs[i]), tmp_path)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(len(docs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(paths)) == len(docs)
    assert sorted(Path(p).read_bytes() for p in paths if p) == sorted(docs)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_a_file_system_without_hard_links_still_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(results_module.os, "link", no_link)
    first = save_result(result(), tmp_path)
    second = save_result(result(b"%PDF v2"), tmp_path)
    assert (first, second) == (str(tmp_path / "ORD-1.pdf"), str(tmp_path / "ORD-1-2.pdf"))
    assert save_result(result(), tmp_path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ORD-1-2.pdf", "ORD-1.pdf"]

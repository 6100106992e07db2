"""``file://`` metadata sidecars (and temp files) stay inside the store.

Whoever can write into a store's directory can plant a symlink under
``.iris-cloud/``. Metadata carries identifiers (order and patient LocalIds on
Order First uploads), so a planted link must not redirect where it is
written, read or deleted, nor where an upload's bytes are staged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from iris_cloud.errors import ConfigurationError, IrisCloudError
from iris_cloud.providers.local import RESERVED_DIR, FileStore

META = {"PatientLocalId": "MRN-7731-QX"}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


def meta_dir(store: FileStore) -> Path:
    path = store.root / RESERVED_DIR / "meta"
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_a_symlinked_meta_directory_does_not_redirect_a_write(
    store: FileStore, outside: Path
) -> None:
    os.symlink(outside, meta_dir(store) / "inbox")
    with pytest.raises(ConfigurationError, match="symbolic link"):
        store.put("inbox/eye.jpg", b"jpeg", metadata=META)
    assert list(outside.iterdir()) == []
    assert not store.exists("inbox/eye.jpg")  # refused before the object was published


@pytest.mark.parametrize("planted", [RESERVED_DIR, f"{RESERVED_DIR}/meta", f"{RESERVED_DIR}/tmp"])
def test_a_symlinked_reserved_directory_receives_nothing(
    store: FileStore, outside: Path, planted: str
) -> None:
    link = store.root / planted
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, link)
    # An overwrite stages its bytes under .iris-cloud/tmp and replaces the sidecar.
    with pytest.raises(ConfigurationError, match="symbolic link"):
        store.put("eye.jpg", b"jpeg bytes with PHI", metadata=META, overwrite=True)
    assert list(outside.rglob("*")) == []
    assert not (store.root / "eye.jpg").exists()
    # A conditional create stages nowhere (a file without a name, in the
    # directory it is published in) and writes metadata only under meta.
    store._unnamed = True
    if planted.endswith("tmp"):
        store.put("eye.jpg", b"jpeg bytes with PHI", metadata=META)
        assert store.get("eye.jpg") == b"jpeg bytes with PHI"
    else:
        with pytest.raises(ConfigurationError, match="symbolic link"):
            store.put("eye.jpg", b"jpeg bytes with PHI", metadata=META)
    assert list(outside.rglob("*")) == []


def test_a_symlinked_meta_directory_does_not_redirect_a_read(
    store: FileStore, outside: Path
) -> None:
    store.put("inbox/eye.jpg", b"jpeg", content_type="image/jpeg", metadata=META)
    # Swap the sidecar directory for a link to crafted metadata.
    crafted = {"content_type": "text/html", "metadata": {"OrderLocalId": "someone-else"}}
    (outside / "eye.jpg.json").write_text(json.dumps(crafted))
    inbox = meta_dir(store) / "inbox"
    (inbox / "eye.jpg.json").unlink()
    inbox.rmdir()
    os.symlink(outside, inbox)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        store.info("inbox/eye.jpg")
    # Listing does not read sidecars; the object's bytes are still there.
    assert [o.name for o in store.list()] == ["inbox/eye.jpg"]
    assert store.get("inbox/eye.jpg") == b"jpeg"


def test_a_symlinked_sidecar_file_is_not_followed(store: FileStore, outside: Path) -> None:
    crafted = outside / "crafted.json"
    crafted.write_text(json.dumps({"content_type": "text/html", "metadata": {"x": "y"}}))
    store.put("eye.jpg", b"jpeg", metadata=META)
    sidecar = meta_dir(store) / "eye.jpg.json"
    sidecar.unlink()
    os.symlink(crafted, sidecar)
    with pytest.raises(IrisCloudError, match="unreadable"):
        store.info("eye.jpg")
    # Overwriting replaces the link itself; the file it pointed at is untouched.
    store.put("eye.jpg", b"jpeg v2", content_type="image/jpeg", metadata=META, overwrite=True)
    assert not sidecar.is_symlink()
    assert store.info("eye.jpg").metadata == META
    assert json.loads(crafted.read_text())["metadata"] == {"x": "y"}


def test_delete_does_not_follow_a_symlinked_meta_directory(store: FileStore, outside: Path) -> None:
    store.put("inbox/eye.jpg", b"jpeg", metadata=META)
    victim = outside / "eye.jpg.json"
    victim.write_text("{}")
    inbox = meta_dir(store) / "inbox"
    (inbox / "eye.jpg.json").unlink()
    inbox.rmdir()
    os.symlink(outside, inbox)
    store.delete("inbox/eye.jpg")
    assert not store.exists("inbox/eye.jpg")
    assert victim.read_text() == "{}"


def test_a_link_in_the_tree_into_the_reserved_directory_is_refused(store: FileStore) -> None:
    store.put("first.jpg", b"jpeg", metadata=META)
    os.symlink(meta_dir(store), store.root / "sneaky")
    with pytest.raises(ConfigurationError, match="reserved"):
        store.put("sneaky/first.jpg.json", b'{"metadata": {"forged": "1"}}', overwrite=True)
    assert store.info("first.jpg").metadata == META

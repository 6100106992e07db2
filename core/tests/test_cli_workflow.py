"""The workflow commands through click's CliRunner, on local:// and file:// endpoints."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from iris_cloud.cli import workflow
from iris_cloud.cli.common import console, err_console
from iris_cloud.config import Profile
from iris_cloud.ports import Message
from wfhelpers import CLIENT_GUID, jpeg_bytes, new_order, sample

pytestmark = pytest.mark.timeout(60)


@click.group()
def cli() -> None:
    """Test root group."""


workflow.register(cli)


@pytest.mark.parametrize("width", [80, 400])
def test_upload_names_are_never_cut(tmp_path: Path, width: int) -> None:
    # An 80-column terminal or a pipe (80 columns by default) used to get
    # "8C3F…" in the file name column: nothing a user could copy.
    console.width = width
    config = write_config(tmp_path)
    eye = tmp_path / "camera-export-2026-12-03-right-eye-of-patient-in-room-4.jpg"
    eye.write_bytes(jpeg_bytes())
    out = run("upload", "--config", str(config), str(eye))
    assert out.exit_code == 0, out.output
    with profile_of(config).open_store("images") as store:
        [uploaded] = store.list()
    lines = out.stdout.splitlines()
    assert any(uploaded.name in line for line in lines), out.stdout
    assert any(eye.name in line for line in lines), out.stdout
    assert "…" not in out.stdout


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(__import__("os").environ):
        if key.startswith("IRIS_CLOUD_") and key != "IRIS_CLOUD_REQUIRE_EMULATORS":
            monkeypatch.delenv(key)
    old = console.width, err_console.width
    console.width = err_console.width = 400
    yield
    console.width, err_console.width = old


def toml_endpoint(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_endpoint(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_config(tmp_path: Path, name: str = "dev", **changes: Any) -> Path:
    roles: dict[str, Any] = {
        r: f"local://{tmp_path}/queues?queue={r}"
        for r in ("orders", "events", "results", "gradings")
    }
    roles.update({r: f"file://{tmp_path}/{r}" for r in ("images", "results_store", "claim_check")})
    roles.update(changes)
    lines = [f'default_profile = "{name}"', f"[profiles.{name}]", f'client_guid = "{CLIENT_GUID}"']
    lines += [f"{role} = {toml_endpoint(v)}" for role, v in roles.items() if v is not None]
    lines += [f"[profiles.{name}.consumer]", "wait = 0.1"]
    path = tmp_path / "iris-cloud.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def profile_of(config: Path) -> Profile:
    from iris_cloud.config import load_profile

    return load_profile(config_file=config)


def queue(config: Path, role: str, *, settle: str = "complete") -> list[Message]:
    got = []
    with profile_of(config).open_broker(role) as broker:
        while batch := broker.receive(10, wait=0.2):
            for m in batch:
                getattr(broker, settle)(m)
            got.extend(batch)
            if settle == "abandon":
                break
    return got


def test_help_texts() -> None:
    for command in ("submit", "cancel", "resend", "upload", "listen", "grade", "check"):
        out = run(command, "--help")
        assert out.exit_code == 0 and "--profile" in out.output
    assert "secrets masked" in run("config", "show", "--help").output


def test_config_show_masks_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SAS", "sv=2020&sig=VERYSECRET")
    config = write_config(
        tmp_path, images={"url": f"file://{tmp_path}/images", "sas_token": {"env": "MY_SAS"}}
    )
    out = run("config", "show", "--config", str(config))
    assert out.exit_code == 0, out.output
    assert "VERYSECRET" not in out.output and "env:MY_SAS" in out.output
    assert "orders" in out.output and "send" in out.output
    data = json.loads(run("config", "show", "--config", str(config), "--json").stdout)
    assert data["images"]["sas_token"] == "*** (env:MY_SAS)"
    assert data["name"] == "dev"
    assert run("config", "list", "--config", str(config)).stdout.strip() == "dev"


def test_bad_profile_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, evnts="mem://x")
    out = run("config", "show", "--config", str(config))
    assert out.exit_code == 2 and "evnts: unknown key" in out.output
    config = write_config(tmp_path, orders="nope://x")
    out = run("submit", "--config", str(config), str(config))
    assert out.exit_code == 2 and "orders.url" in out.output


def test_submit_cancel_resend(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(new_order("CLI-1")))
    out = run("submit", "--config", str(config), str(order_file), "--transaction-id", "tx-cli")
    assert out.exit_code == 0, out.output
    assert "CLI-1" in out.output and "tx-cli" in out.output
    assert run("cancel", "--config", str(config), "CLI-1").exit_code == 0
    assert run("resend", "--config", str(config), "CLI-1").exit_code == 0
    codes = [json.loads(m.body)["OrderControlCode"] for m in queue(config, "orders")]
    assert codes == ["NW", "CA", "ResendResult"]


def test_submit_refusals(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    bad = new_order("BAD")
    del bad["Patient"]["Dob"]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    out = run("submit", "--config", str(config), str(tmp_path / "bad.json"))
    assert out.exit_code == 1 and "Patient.Dob" in out.output
    missing = new_order("IMG", images=[{"AzureBlobStorage": {"FileName": "NOPE-1.jpg"}}])
    (tmp_path / "missing.json").write_text(json.dumps(missing))
    out = run("submit", "--config", str(config), str(tmp_path / "missing.json"))
    assert out.exit_code == 1 and "NOPE-1.jpg" in out.output
    (tmp_path / "garbage.json").write_text("{not json")
    out = run("submit", "--config", str(config), str(tmp_path / "garbage.json"))
    assert out.exit_code == 1 and "not JSON" in out.output
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(new_order("DRY")))
    out = run("submit", "--config", str(config), "--dry-run", str(ok))
    assert out.exit_code == 0 and "dry run" in out.output
    assert queue(config, "orders") == []


def test_upload_image_first_and_order_first(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    eye = tmp_path / "eye.jpg"
    eye.write_bytes(jpeg_bytes())
    out = run("upload", "--config", str(config), "--json", str(eye))
    assert out.exit_code == 0, out.output
    [entry] = json.loads(out.stdout)
    name = entry["AzureBlobStorage"]["FileName"]
    assert (tmp_path / "images" / name).read_bytes() == eye.read_bytes()
    # The reference is accepted by submit on this machine.
    order = new_order("UP-1", images=[{**entry, "LocalId": "1", "Laterality": "OD"}])
    (tmp_path / "o.json").write_text(json.dumps(order))
    assert run("submit", "--config", str(config), str(tmp_path / "o.json")).exit_code == 0
    out = run(
        "upload",
        "--config",
        str(config),
        "--order",
        "OF-9",
        "--patient",
        "P-9",
        "--laterality",
        "OS",
        str(eye),
    )
    assert out.exit_code == 0 and "Order First" in out.output
    with profile_of(config).open_store("images") as store:
        tagged = [o for o in store.list() if o.name != name]
        assert len(tagged) == 1
        assert dict(store.info(tagged[0].name).metadata)["order_local_id"] == "OF-9"
    out = run("upload", "--config", str(config), "--patient", "P", str(eye))
    assert out.exit_code == 2


def test_grade(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = run(
        "grade",
        "--config",
        str(config),
        "ORD-5",
        "--od",
        "Diabetic Retinopathy=Mild",
        "--od",
        "Suspected Glaucoma",
        "--os-ungradable",
        "Dirty Lens",
    )
    assert out.exit_code == 0, out.output
    [msg] = queue(config, "gradings")
    body = json.loads(msg.body)
    assert body["LocalId"] == "ORD-5" and body["ClientGuid"] == CLIENT_GUID
    assert body["OD"]["Findings"] == [
        {"Finding": "Diabetic Retinopathy", "Result": "Mild"},
        {"Finding": "Suspected Glaucoma"},
    ]
    assert body["OS"] == {"Gradable": False, "UngradableReasons": ["Dirty Lens"]}
    grading_file = tmp_path / "g.json"
    grading_file.write_text(json.dumps(sample("grading-1.json")))
    assert run("grade", "--config", str(config), "--file", str(grading_file)).exit_code == 0
    assert run("grade", "--config", str(config)).exit_code == 2


def test_listen_results_saves_documents(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = sample("result-final.json")
    result["ResultsDocument"]["Content"] = base64.b64encode(b"%PDF-1.4 hi").decode()
    result["Order"]["LocalId"] = "RES-1"
    with profile_of(config).open_broker("results") as broker:
        broker.send(json.dumps(result).encode())
    out_dir = tmp_path / "saved"
    # What a save killed mid-write left an hour ago, and one in progress now.
    (out_dir / "PC1234").mkdir(parents=True)
    stale, fresh = out_dir / "PC1234" / ".RES-0.pdf.k1ll3d.part", out_dir / ".RES-9.pdf.live.part"
    stale.write_bytes(b"%PDF-half")
    fresh.write_bytes(b"%PDF-half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    out = run(
        "listen",
        "results",
        "--config",
        str(config),
        "--save",
        str(out_dir),
        "--template",
        "{clientLocalId}/{orderLocalId}.pdf",
        "--count",
        "1",
        "--timeout",
        "20",
    )
    assert out.exit_code == 0, out.output
    assert (out_dir / "PC1234" / "RES-1.pdf").read_bytes() == b"%PDF-1.4 hi"
    assert not stale.exists() and fresh.exists()
    assert "handled 1" in out.output
    out = run("listen", "results", "--config", str(config), "--template", "{bad}", "--count", "1")
    assert out.exit_code == 2 and "unknown token" in out.output
    out = run("listen", "events", "--config", str(config), "--save", str(out_dir), "--count", "1")
    assert out.exit_code == 2


def test_listen_save_checks_the_directory_and_fails_when_a_handler_did(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = run("listen", "results", "--config", str(config), "--save", str(blocker / "sub"))
    assert out.exit_code == 2 and "not a writable directory" in out.output
    result = sample("result-final.json")
    result["ResultsDocument"]["Content"] = base64.b64encode(b"%PDF-1.4 hi").decode()
    result["Order"]["LocalId"] = "RES-2"
    with profile_of(config).open_broker("results") as broker:
        broker.send(json.dumps(result).encode())
    out_dir = tmp_path / "saved"
    out_dir.mkdir()
    (out_dir / "RES-2").write_text("a file where the document's directory must go")
    args = ["--save", str(out_dir), "--template", "{orderLocalId}/doc.pdf", "--timeout", "3"]
    out = run("listen", "results", "--config", str(config), *args)
    assert out.exit_code == 1, out.output
    assert "handlers failed" in out.output
    assert "dead-lettered 0" in out.output  # given back for a retry, not lost


def test_listen_events_prints_and_dead_letters_poison(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with profile_of(config).open_broker("events") as broker:
        broker.send(json.dumps(sample("event-order-graded.json")).encode())
        broker.send(b"not an event")
    out = run("listen", "events", "--config", str(config), "--count", "2", "--timeout", "20")
    assert out.exit_code == 0, out.output
    assert "OrderGradedEvent" in out.output and "order=ORD1234" in out.output
    assert "dead-lettered 1" in out.output
    with profile_of(config).open_broker("events") as broker:
        [dead] = broker.receive_dead_letters(1, wait=1)
        assert dead.dead_letter_reason == "invalid message: <root>"


def test_check_full_rights_and_no_consumption(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with profile_of(config).open_broker("events") as broker:
        broker.send(Message(body=b"{}", message_id="real-one"))
    out = run("check", "--config", str(config), "--json")
    assert out.exit_code == 0, out.output
    checks = {c["role"]: c for c in json.loads(out.stdout)}
    assert checks["orders"]["rights"] == {"receive": "verified", "send": "verified"}
    assert checks["images"]["rights"] == dict.fromkeys(
        ("list", "write", "read", "delete"), "verified"
    )
    assert checks["events"]["rights"]["receive"] == "verified"
    assert checks["events"]["notes"] == []
    # The real message was peeked, not taken: its first delivery is still to
    # come. No probe object was left behind.
    [real] = queue(config, "events", settle="abandon")
    assert real.message_id == "real-one"
    assert real.delivery_count == 1
    assert [
        p.name for p in (tmp_path / "images").iterdir() if not p.name.startswith(".iris-cloud")
    ] == []
    with profile_of(config).open_store("images") as store:
        assert list(store.list()) == []


def test_check_send_probe_takes_it_back(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = run("check", "--config", str(config), "--json", "--send-probe")
    assert out.exit_code == 0, out.output
    checks = {c["role"]: c for c in json.loads(out.stdout)}
    assert checks["orders"]["rights"]["send"] == "verified"
    assert "probe sent and removed" in checks["orders"]["notes"]
    assert queue(config, "orders") == []


def test_check_reports_iris_style_write_only_credentials(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        orders={"url": f"local://{tmp_path}/queues?queue=orders", "access": "w"},
        images={"url": f"file://{tmp_path}/images", "access": "w"},
        events={"url": f"local://{tmp_path}/queues?queue=events", "access": "r"},
    )
    out = run("check", "--config", str(config), "--json", "--send-probe")
    checks = {c["role"]: c for c in json.loads(out.stdout)}
    assert checks["orders"]["rights"] == {"receive": "refused", "send": "verified"}
    assert any("probe message" in n for n in checks["orders"]["notes"])
    assert checks["images"]["rights"] == {
        "list": "refused",
        "write": "verified",
        "read": "refused",
        "delete": "refused",
    }
    assert any("left" in n for n in checks["images"]["notes"])
    assert checks["events"]["rights"] == {"receive": "verified", "send": "refused"}
    # Everything the integrator side needs is there: exit 0; the table form works too.
    assert out.exit_code == 0
    # Without the write probe the images' write right is unverified: not ok, unless allowed.
    table = run("check", "--config", str(config), "--no-write")
    assert table.exit_code == 1 and "images" in table.output
    allowed = run("check", "--config", str(config), "--no-write", "--allow-unverified")
    assert allowed.exit_code == 0, allowed.output


def test_check_fails_when_a_needed_right_is_missing(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, results={"url": f"local://{tmp_path}/queues?queue=results", "access": "w"}
    )
    out = run("check", "--config", str(config))
    assert out.exit_code == 1


def test_check_where_the_service_cannot_peek() -> None:
    from dataclasses import replace

    from iris_cloud.cli.workflow import EndpointCheck, _check_receive
    from iris_cloud.ports import MessageBroker
    from iris_cloud.providers.memory import MemoryBroker

    class Blind(MemoryBroker):
        """A service that can neither peek nor otherwise confirm a right."""

        def verify(self, right: str) -> bool:
            return MessageBroker.verify(self, right)

    with Blind(f"nopeek-{uuid.uuid4().hex[:8]}") as broker:
        broker.capabilities = replace(broker.capabilities, peek=False)
        broker.send(Message(body=b"{}", message_id="real-one"))
        check = EndpointCheck("events", "mem://x", "receive")
        _check_receive(broker, check, receive_probe=False)
        assert check.rights == {"receive": "unverified"}
        assert "--receive-probe" in check.notes[0]
        assert not check.ok()  # unverified is not ok ...
        assert check.ok(allow_unverified=True)  # ... unless the user accepts it
        probed = EndpointCheck("events", "mem://x", "receive")
        _check_receive(broker, probed, receive_probe=True)
        assert probed.rights == {"receive": "verified"}
        assert "delivery count rose by 1" in probed.notes[0]
        [again] = broker.receive(wait=1)
        assert (again.message_id, again.delivery_count) == ("real-one", 2)
        broker.complete(again)

"""Install outside the workspace, as the README's "Install" says, and use it.

Builds every distribution into a wheelhouse (``uv build --all-packages``),
then for each extra creates a fresh venv with plain ``pip`` (not uv), runs the
README's install command (``pip install --find-links WHEELHOUSE ...``;
dependencies come from the package index, our own distributions only from
the wheelhouse, which pip's install report proves) and smoke-tests it:
``iris-cloud providers`` lists the provider, a profile of ``mem://`` and the
provider's URLs opens, ``iris-cloud validate --samples`` passes. The wheels'
metadata is checked too: no dependency only another distribution needs, the
testing helpers' pytest declared, a real long description.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
import zipfile
from collections.abc import Callable
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = {
    "iris-cloud": "iris_cloud",
    "iris-cloud-aws": "iris_cloud_aws",
    "iris-cloud-azure": "iris_cloud_azure",
    "iris-cloud-gcp": "iris_cloud_gcp",
    "iris-cloud-simulator": "iris_cloud_simulator",
    "iris-cloud-emulators": "iris_cloud_emulators",
}
BUILTIN_SCHEMES = {"mem", "local", "file"}

# What opens without a network call or credentials, per provider: a store URL
# (brokers look their queue up when opened).
# The distribution each provider's [async] extra brings (GCP's async classes need none).
ASYNC_EXTRAS = {"aws": "aiobotocore", "azure": "aiohttp"}

PROVIDER_STORES = {
    "aws": ("s3://iris-dist-check/images?region=eu-central-1", {}),
    "azure": ("azblob://irisdistcheck/images", {"account_key": "a2V5"}),
    "gcp": ("gs://iris-dist-check/images?endpoint=http://127.0.0.1:9", {}),
}


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's build command: every distribution's wheel in one directory."""
    out = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run(
        [sys.executable, "-m", "uv", "build", "--all-packages", "--wheel", "--out-dir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return out


def wheel_of(wheelhouse: Path, dist: str) -> Path:
    (path,) = wheelhouse.glob(f"{DISTRIBUTIONS[dist]}-*.whl")
    return path


def metadata(wheelhouse: Path, dist: str) -> Message:
    with zipfile.ZipFile(wheel_of(wheelhouse, dist)) as whl:
        (name,) = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(whl.read(name).decode())


def requirements(meta: Message, extra: str | None = None) -> set[str]:
    """Names of the distributions required (by the base, or by ``extra`` only)."""
    names = set()
    for req in meta.get_all("Requires-Dist") or []:
        name = re.split(r"[\s\[<>=!~;(]", req, maxsplit=1)[0].lower()
        marker = req.split(";", 1)[1] if ";" in req else ""
        in_extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if (in_extra.group(1) if in_extra else None) == extra:
            names.add(name)
    return names


class Venv:
    """A fresh venv with pip; ``install`` runs the README's command in it."""

    def __init__(self, path: Path, wheelhouse: Path) -> None:
        self.path = path
        self.wheelhouse = wheelhouse
        venv.EnvBuilder(with_pip=True, clear=True).create(path)
        self.python = path / "bin" / "python"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("IRIS_CLOUD_", "VIRTUAL_ENV", "PYTHON"))
        }
        self.env.update(HOME=str(path / "home"), PIP_DISABLE_PIP_VERSION_CHECK="1")
        (path / "home").mkdir()

    def install(self, *requirements: str) -> dict[str, str]:
        """``pip install --find-links WHEELHOUSE REQS``; name -> where pip took it from."""
        report = self.path / "report.json"
        self.run(
            str(self.python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-compile",  # bytecode for every SDK file: minutes, and nothing to check
            "--report",
            str(report),
            "--find-links",
            str(self.wheelhouse),
            *requirements,
        )
        taken = json.loads(report.read_text())["install"]
        return {item["metadata"]["name"].lower(): item["download_info"]["url"] for item in taken}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            args,
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if check and result.returncode != 0:
            command = " ".join(args[:6])
            output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            pytest.fail(f"{command} ... exited {result.returncode}:\n{output}")
        return result

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.path / "bin" / "iris-cloud"), *args, check=check)

    def python_code(self, code: str) -> str:
        return self.run(str(self.python), "-c", code).stdout


@pytest.fixture(scope="session")
def make_venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Callable[[str], Venv]:
    def make(name: str) -> Venv:
        return Venv(tmp_path_factory.mktemp(f"venv-{name}"), wheelhouse)

    return make


def assert_ours_from_wheelhouse(
    taken: dict[str, str], wheelhouse: Path, expected: set[str]
) -> None:
    ours = {name: url for name, url in taken.items() if name in DISTRIBUTIONS}
    assert set(ours) == expected
    for name, url in ours.items():
        assert url.startswith(wheelhouse.as_uri() + "/"), f"{name} came from {url}"


def providers_listed(env: Venv) -> dict[str, set[str]]:
    listed = json.loads(env.cli("providers", "--json").stdout)
    return {p["name"]: set(p["brokers"]) | set(p["stores"]) for p in listed}


def smoke(env: Venv, *providers: str) -> None:
    """validate --samples; the providers listed; a mem:// + provider profile opens."""
    env.cli("validate", "--samples")
    listed = providers_listed(env)
    assert set(providers) <= set(listed), listed
    stores = [PROVIDER_STORES[p] for p in providers] or [("file:///tmp", {})]
    roles = ("images", "results_store", "claim_check")[: len(stores)]
    profile: dict[str, object] = {"orders": "mem://orders", "events": "mem://events"}
    profile.update(
        {role: {"url": url, **opts} for role, (url, opts) in zip(roles, stores, strict=True)}
    )
    code = (
        "from iris_cloud.config import Profile\n"
        f"p = Profile.from_dict({profile!r})\n"
        "with p.open_broker('orders') as b:\n"
        "    b.send(b'ping'); assert b.receive(1)[0].body == b'ping'\n"
        f"for role in {list(roles)!r}:\n"
        "    with p.open_store(role) as s: print(type(s).__name__)\n"
    )
    opened = env.python_code(code).split()
    assert len(opened) == len(stores), opened


# -- metadata -------------------------------------------------------------------------


def test_every_distribution_builds(wheelhouse: Path) -> None:
    for dist in DISTRIBUTIONS:
        assert metadata(wheelhouse, dist)["Name"] == dist


def test_core_depends_only_on_what_it_imports(wheelhouse: Path) -> None:
    base = requirements(metadata(wheelhouse, "iris-cloud"))
    assert "fpdf2" not in base  # the simulator's PDF reports: iris-cloud-simulator's
    assert "fpdf2" in requirements(metadata(wheelhouse, "iris-cloud-simulator"))
    assert not base & set(DISTRIBUTIONS)


def test_testing_helpers_declare_pytest(wheelhouse: Path) -> None:
    assert requirements(metadata(wheelhouse, "iris-cloud"), "testing") == {"pytest"}
    for dist in ("iris-cloud-aws", "iris-cloud-azure", "iris-cloud-gcp"):
        assert "iris-cloud" in requirements(metadata(wheelhouse, dist), "testing"), dist
    assert "moto" in requirements(metadata(wheelhouse, "iris-cloud-aws"), "testing")
    for dist in ("iris-cloud-azure", "iris-cloud-gcp"):
        assert "iris-cloud-emulators" in requirements(metadata(wheelhouse, dist), "testing"), dist


def test_core_long_description_is_the_readme(wheelhouse: Path) -> None:
    meta = metadata(wheelhouse, "iris-cloud")
    assert meta["Description-Content-Type"] == "text/markdown"
    body = meta.get_payload()
    assert isinstance(body, str)
    assert "\\n" not in body
    assert body.startswith("# iris-cloud\n")
    assert body.strip() == (ROOT / "core" / "README.md").read_text(encoding="utf-8").strip()


# -- installs ---------------------------------------------------------------------------


def test_core_alone_then_the_simulator(make_venv: Callable[[str], Venv]) -> None:
    env = make_venv("core")
    taken = env.install("iris-cloud")
    assert_ours_from_wheelhouse(taken, env.wheelhouse, {"iris-cloud"})
    assert "fpdf2" not in taken and "pytest" not in taken
    smoke(env)
    listed = providers_listed(env)
    assert set(listed) == {"memory", "local"}
    assert set().union(*listed.values()) == BUILTIN_SCHEMES
    help_text = env.cli("--help").stdout
    assert " demo " not in help_text and " simulate " not in help_text

    # Metrics are an extra: without it, asking for them names it; with it, they work.
    metrics = (
        "from iris_cloud.consumer import Consumer, IrisApp\n"
        "from iris_cloud.providers.memory import MemoryBroker\n"
        "with Consumer(IrisApp(), MemoryBroker('m'), metrics=True) as c:\n"
        "    print(type(c.metrics).__name__)\n"
    )
    failed = env.run(str(env.python), "-c", metrics, check=False)
    assert failed.returncode != 0 and "iris-cloud[metrics]" in failed.stderr
    taken = env.install("iris-cloud[metrics]")
    assert "prometheus-client" in taken or "prometheus_client" in taken
    assert env.python_code(metrics).strip() == "MetricsObserver"

    taken = env.install("iris-cloud-simulator")
    assert_ours_from_wheelhouse(taken, env.wheelhouse, {"iris-cloud-simulator"})
    env.cli("simulate", "--help")
    demo = env.cli("demo", "--orders", "2", "--dir", str(env.path / "demo"))
    assert "done in" in demo.stdout


@pytest.mark.parametrize("provider", ["aws", "azure", "gcp"])
def test_one_provider_extra(make_venv: Callable[[str], Venv], provider: str) -> None:
    env = make_venv(provider)
    taken = env.install(f"iris-cloud[{provider}]")
    assert_ours_from_wheelhouse(taken, env.wheelhouse, {"iris-cloud", f"iris-cloud-{provider}"})
    smoke(env, provider)
    assert set(providers_listed(env)) - {"memory", "local"} == {provider}
    if provider in ASYNC_EXTRAS:
        # The async classes need the provider's [async] extra: without it, the
        # error names the extra; with it, the async store opens.
        url, options = PROVIDER_STORES[provider]
        code = (
            "import asyncio\n"
            "from iris_cloud import aio\n"
            "async def main():\n"
            f"    async with aio.open_store({url!r}, **{options!r}) as s:\n"
            "        print(type(s).__name__)\n"
            "asyncio.run(main())\n"
        )
        failed = env.run(str(env.python), "-c", code, check=False)
        assert failed.returncode != 0, failed.stdout
        assert f"iris-cloud-{provider}[async]" in failed.stderr, failed.stderr[-2000:]
        taken = env.install(f"iris-cloud-{provider}[async]")
        assert ASYNC_EXTRAS[provider] in taken, sorted(taken)
        assert env.python_code(code).strip().startswith("Async")


def test_all_and_demo_and_testing(make_venv: Callable[[str], Venv]) -> None:
    env = make_venv("all")
    taken = env.install("iris-cloud[all]")
    assert_ours_from_wheelhouse(
        taken,
        env.wheelhouse,
        {"iris-cloud", "iris-cloud-aws", "iris-cloud-azure", "iris-cloud-gcp"},
    )
    smoke(env, *PROVIDER_STORES)

    taken = env.install("iris-cloud[demo]")
    assert_ours_from_wheelhouse(taken, env.wheelhouse, {"iris-cloud-simulator"})
    env.cli("simulate", "--help")

    # The testing helpers import pytest (and their servers' packages): the extra brings them.
    failed = env.run(str(env.python), "-c", "import iris_cloud_aws.testing", check=False)
    assert failed.returncode != 0 and "pytest" in failed.stderr
    env.install("iris-cloud-aws[testing]", "iris-cloud-gcp[testing]", "iris-cloud-azure[testing]")
    env.python_code(
        "import iris_cloud_aws.testing, iris_cloud_azure.testing, iris_cloud_gcp.testing, moto"
    )

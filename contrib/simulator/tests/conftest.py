"""Fixtures of the simulator tests: profiles on mem:// and local://, a simulator, readers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from iris_cloud.client import IrisClient
from iris_cloud.config import Profile
from iris_cloud_simulator import Simulator
from simhelpers import Reader, profile_dict


@pytest.fixture(params=["mem", "local"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def integrator(kind: str, tmp_path: Path) -> Profile:
    return Profile.from_dict(profile_dict(kind, tmp_path / "exchange"))


@pytest.fixture
def make_simulator(integrator: Profile, tmp_path: Path) -> Iterator[Callable[..., Simulator]]:
    """Simulators on the integrator's mirror, sharing one state dir, closed at teardown."""
    made: list[Simulator] = []

    def make(profile: Profile | None = None, **kwargs: Any) -> Simulator:
        kwargs.setdefault("poll_interval", 0.05)
        sim = Simulator((profile or integrator).mirror(), tmp_path / "sim-state", **kwargs)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()


@pytest.fixture
def iris(integrator: Profile) -> Iterator[IrisClient]:
    with IrisClient(integrator) as client:
        yield client


@pytest.fixture
def events(integrator: Profile) -> Iterator[Reader]:
    broker = integrator.open_broker("events")
    yield Reader(broker)
    broker.close()


@pytest.fixture
def results(integrator: Profile) -> Iterator[Reader]:
    broker = integrator.open_broker("results")
    yield Reader(broker)
    broker.close()

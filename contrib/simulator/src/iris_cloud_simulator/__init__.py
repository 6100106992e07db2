"""iris-cloud-simulator: an IRIS platform stand-in for the iris-cloud framework.

Point it at the same queues and containers as an integrator (the platform
side, :meth:`iris_cloud.config.Profile.mirror`) on any provider; it answers
orders as IRIS does, grades them (automatically or from GradingSubmissions)
and delivers results with a PDF report. ``iris-cloud simulate`` runs it as a
service; :class:`Simulator` is the Python API.
"""

from __future__ import annotations

from iris_cloud_simulator.grading import DR_LEVELS, AutoGrader, GradingMode
from iris_cloud_simulator.simulator import Simulator, SimulatorStats

__all__ = ["DR_LEVELS", "AutoGrader", "GradingMode", "Simulator", "SimulatorStats"]

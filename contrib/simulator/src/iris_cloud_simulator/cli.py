"""``iris-cloud simulate``: run the IRIS simulator as a service until SIGINT / SIGTERM."""

from __future__ import annotations

import logging
from pathlib import Path

import click

__all__ = ["simulate_command"]


@click.command("simulate")
@click.option(
    "--profile",
    "-p",
    "profile_name",
    metavar="NAME",
    help="Profile whose endpoints to serve (an integrator profile is mirrored).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file to read instead of ./iris-cloud.toml (or IRIS_CLOUD_CONFIG).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".iris-cloud-simulator"),
    show_default=True,
    help="Where the simulator keeps its state (SQLite); a restart continues from it.",
)
@click.option(
    "--auto-grade/--manual-grade",
    default=True,
    show_default=True,
    help="Grade orders as soon as they are ready, or wait for a GradingSubmission.",
)
@click.option(
    "--order-first-images",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Images an Order First order needs before it is ready for grading.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=0.5,
    show_default=True,
    help="Seconds between looks at the images store (Order First).",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Log what the simulator does (no patient data)."
)
def simulate_command(
    profile_name: str | None,
    config_file: Path | None,
    state_dir: Path,
    auto_grade: bool,
    order_first_images: int,
    poll_interval: float,
    verbose: bool,
) -> None:
    """Run the IRIS simulator on a profile's queues and containers.

    It consumes orders (and gradings), answers with events, grades (at once
    with --auto-grade, else on a GradingSubmission) and delivers results with
    a PDF report, until SIGINT or SIGTERM.
    """
    from iris_cloud.cli.common import console, err_console, markup
    from iris_cloud.config import load_profile
    from iris_cloud.errors import ConfigurationError, IrisCloudError

    from iris_cloud_simulator.simulator import Simulator

    root = logging.getLogger()
    if verbose and root.getEffectiveLevel() > logging.INFO:
        # iris-cloud's own -v/--log-level configured the handler; this only lowers the level.
        root.setLevel(logging.INFO)
    try:
        profile = load_profile(profile_name, config_file=config_file)
        simulator = Simulator(
            profile,
            state_dir,
            grading="auto" if auto_grade else "manual",
            order_first_images=order_first_images,
            poll_interval=poll_interval,
        )
    except ConfigurationError as exc:
        err_console.print(markup("[red]configuration error:[/] {}", exc))
        raise SystemExit(2) from None
    except IrisCloudError as exc:
        err_console.print(markup("[red]{}:[/] {}", type(exc).__name__, exc))
        raise SystemExit(1) from None
    console.print(
        markup(
            "IRIS simulator on profile [bold]{}[/] ({} grading), state in {}; Ctrl-C to stop",
            profile.name,
            "auto" if auto_grade else "manual",
            state_dir,
        )
    )
    try:
        with simulator:
            code = simulator.run()
            stats = simulator.stats()
    except IrisCloudError as exc:
        err_console.print(markup("[red]{}:[/] {}", type(exc).__name__, exc))
        raise SystemExit(1) from None
    summary = ", ".join(f"{k} {v}" for k, v in stats.as_dict().items() if v)
    console.print(f"simulator stopped: {summary or 'nothing happened'}")
    raise SystemExit(code)

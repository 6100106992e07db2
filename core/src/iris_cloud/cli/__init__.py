"""The ``iris-cloud`` command: built-in commands plus those plugins register."""

from __future__ import annotations

import importlib
from importlib.metadata import version

import click

__all__ = ["main"]

# Modules that add built-in commands; each exposes ``register(cli)``.
BUILTIN_COMMANDS = (
    "iris_cloud.cli.validate",
    "iris_cloud.cli.providers",
    "iris_cloud.cli.workflow",
    "iris_cloud.cli.provision",
    "iris_cloud.cli.deadletters",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version("iris-cloud"), prog_name="iris-cloud")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log to stderr: -v what happens (INFO), -vv detail (DEBUG). Never patient data.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Log level (overrides -v; default WARNING).",
)
@click.option(
    "--sdk-logs",
    is_flag=True,
    help="Let the cloud SDKs (botocore, azure, google, grpc, urllib3) log at that level too. "
    "WARNING: at DEBUG they log whole message bodies (patient data) and may log credentials.",
)
def main(verbose: int, log_level: str | None, sdk_logs: bool) -> None:
    """iris-cloud: the IRIS order exchange on Azure, AWS, Google Cloud or locally.

    Validate messages, inspect providers and profiles, submit orders, upload
    images, listen for events and results, and run the IRIS simulator.
    """
    from iris_cloud.logs import configure_cli_logging

    configure_cli_logging(verbose, log_level, sdk_logs)


def _load_commands() -> None:
    for name in BUILTIN_COMMANDS:
        importlib.import_module(name).register(main)
    from iris_cloud.plugins import get_plugin_manager

    get_plugin_manager().hook.iris_cloud_register_commands(cli=main)


_load_commands()

"""Shared pieces of the CLI: the rich consoles and error presentation."""

from __future__ import annotations

from rich.console import Console

__all__ = ["console", "err_console"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

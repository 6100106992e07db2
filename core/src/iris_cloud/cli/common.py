"""Shared pieces of the CLI: consoles on which text is plain unless we style it.

Whatever the CLI prints may come from a sender (event fields, message ids,
object names, error texts quoting them). On these consoles a ``str`` is
always printed as it is: no rich markup (``[link=...]`` stays text, ``[/]``
cannot raise, ``[aws]`` in "install iris-cloud[aws]" is not eaten) and control
characters other than newline and tab escaped (no escape sequences reach the
terminal). Our own styling goes through :func:`markup`, which inserts values
as plain text; a sender's value goes through :func:`plain` or :func:`markup`,
which escape newlines too, so it cannot fake a line of output.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from iris_cloud.untrusted import clean

__all__ = ["TERMINAL_CHARS", "PlainConsole", "console", "err_console", "markup", "plain"]

TERMINAL_CHARS = 2000
"""Cap on one sender value on the terminal: a field, not a flood."""


def plain(value: object, limit: int | None = TERMINAL_CHARS) -> Text:
    """``value`` as plain terminal text: no markup, control characters escaped."""
    return Text(clean(value, limit))


def markup(template: str, *values: object) -> Text:
    """Our rich markup ``template`` with each ``{}`` filled by a value as plain text."""
    return Text.from_markup(template.format(*(escape(clean(v, TERMINAL_CHARS)) for v in values)))


class PlainConsole(Console):
    """A console that prints every ``str`` as plain text (see the module docstring)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Print ``objects``; strings are plain text, renderables print as they are."""
        kwargs.pop("markup", None)
        super().print(
            *(Text(clean(o, None, lines=True)) if isinstance(o, str) else o for o in objects),
            **kwargs,
        )


console = PlainConsole(highlight=False, markup=False, emoji=False)
err_console = PlainConsole(stderr=True, highlight=False, markup=False, emoji=False)

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

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from iris_cloud.untrusted import clean

__all__ = [
    "TERMINAL_CHARS",
    "PlainConsole",
    "console",
    "err_console",
    "markup",
    "plain",
    "print_rows",
]

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


def print_rows(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Text]], out: Console = console
) -> None:
    """A table where it fits ``out``, else one ``column: value`` line per cell.

    No value is ever cut or wrapped: identifiers (object names, message ids)
    must copy whole from an 80-column terminal or a pipe.
    """
    widths = [max([len(c), *(row[i].cell_len for row in rows)]) for i, c in enumerate(columns)]
    # Each column takes a border and a space either side; one more border closes the row.
    if sum(widths) + 3 * len(columns) + 1 <= out.width:
        table = Table(title=title)
        for column in columns:
            table.add_column(column, no_wrap=True)
        for row in rows:
            table.add_row(*row)
        out.print(table)
        return
    out.print(Text(title, style="italic"))
    for row in rows:
        out.print(Text(""))
        for column, value in zip(columns, row, strict=True):
            out.print(Text.assemble(f"  {column}: ", value), soft_wrap=True)

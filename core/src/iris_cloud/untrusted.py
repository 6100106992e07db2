"""Text a sender controls, made safe to put on one log line or a terminal.

Message ids, ``ResultObjectType`` values, object names, error texts from the
other side: anything that arrives in a message may carry newlines (a forged
log line), terminal escape sequences (a retitled window, a cleared screen, a
hidden link) or megabytes. :func:`clean` is the one place that turns such a
value into printable text: control characters (C0, DEL, C1), line and
paragraph separators and bidirectional overrides become ``\\xNN`` /
``\\uNNNN`` escapes, and the text is capped in length.
"""

from __future__ import annotations

import re

__all__ = ["MAX_CHARS", "clean"]

MAX_CHARS = 200
"""Default cap: enough for any id or type name, short of a message body."""

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# The same but for newline and tab: our own multi-line text on a terminal.
_UNSAFE_INLINE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object, limit: int | None = MAX_CHARS, *, lines: bool = False) -> str:
    """``value`` as one line of printable text, at most ``limit`` characters of it.

    Longer text is cut and ends with ``…(+N)``, N being the characters left
    out. ``limit=None`` keeps the whole text (for a terminal that shows a
    field the user asked for). ``lines=True`` keeps newlines and tabs, for
    multi-line text of our own; a sender's value is always cleaned without.
    """
    text = value if isinstance(value, str) else str(value)
    cut = ""
    if limit is not None and len(text) > limit:
        cut = f"…(+{len(text) - limit})"
        text = text[:limit]
    return (_UNSAFE_INLINE if lines else _UNSAFE).sub(_escape, text) + cut

"""Logging that carries no patient data: escaped arguments, quiet SDK loggers.

Every module of the framework logs through :func:`get_logger`. Its loggers
pass every argument that is not a number through
:func:`iris_cloud.untrusted.clean`, so a sender's message id or type name
cannot forge a log line or flood the log; callers log class names and field
paths, never bodies or values. A logged exception (``log.exception``,
``exc_info``) keeps its classes and frames but not its text, which may quote
the message being handled.

The cloud SDKs log whole request bodies (OrderRequests, results) and
credentials headers (``x-amz-security-token``) at DEBUG. Importing
``iris_cloud`` sets their loggers (:data:`SDK_LOGGERS`) to WARNING unless the
application already gave them a level, so turning the root logger to DEBUG
for our detail does not turn theirs on. :func:`enable_sdk_logs` (the CLI's
``--sdk-logs``) is the separate switch that does, with a warning.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Mapping
from typing import Any

from iris_cloud.untrusted import clean

__all__ = [
    "SDK_LOGGERS",
    "SafeLogger",
    "configure_cli_logging",
    "enable_sdk_logs",
    "get_logger",
    "quiet_sdk_loggers",
]

SDK_LOGGERS = (
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "azure",
    "msal",
    "google",
    "grpc",
    "httpx",
    "httpcore",
    "hpack",
    "PIL",
    "pydicom",
    "fpdf",
)
"""Loggers of the SDKs and HTTP stacks the providers use, whose DEBUG output
includes message bodies and credentials, and of the image and PDF libraries
(Pillow logs every EXIF tag, the patient's LocalId that tagging writes included)."""

SDK_WARNING = (
    "SDK logging enabled at %s: the cloud SDKs log whole request and response "
    "bodies (patient data) and may log credentials; do not keep these logs"
)


class SafeLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger whose string (and other non-number) arguments are escaped and capped."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        """Leave ``extra`` as the caller gave it (the default would replace it)."""
        return msg, kwargs

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Log ``msg % args`` with every non-number argument cleaned."""
        if not self.isEnabledFor(level):
            return
        safe = tuple(a if isinstance(a, int | float) else clean(a) for a in args)
        # Report the caller, not this method, as the record's origin.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        exc = _exception(kwargs.pop("exc_info", None))
        if exc is not None:
            msg = f"{msg}\n{traceback_without_text(exc).replace('%', '%%')}"
        self.logger.log(level, msg, *safe, **kwargs)


def _exception(exc_info: object) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        value = exc_info[1]
        return value if isinstance(value, BaseException) else None
    return sys.exc_info()[1] if exc_info else None


def traceback_without_text(exc: BaseException) -> str:
    """``exc``'s traceback (causes included) with classes and frames, not messages.

    An exception's text may quote the message being handled (a file name, a
    field value), so a logged traceback keeps only where it happened.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.format_list(traceback.extract_tb(current.__traceback__))
        parts.append(
            "Traceback (most recent call last):\n"
            + "".join(frames)
            + f"{type(current).__module__}.{type(current).__qualname__} (text withheld)"
        )
        current = current.__cause__ or current.__context__
    return "\n\nwhich was raised while handling / caused by:\n".join(reversed(parts))


def get_logger(name: str) -> SafeLogger:
    """The framework's logger ``name`` (e.g. ``iris_cloud.consumer``)."""
    return SafeLogger(logging.getLogger(name))


def quiet_sdk_loggers() -> None:
    """Set each SDK logger that has no level of its own to WARNING."""
    for name in SDK_LOGGERS:
        sdk = logging.getLogger(name)
        if sdk.level == logging.NOTSET:
            sdk.setLevel(logging.WARNING)


def enable_sdk_logs(level: int = logging.DEBUG) -> None:
    """Let the SDK loggers log at ``level``; warns that bodies and credentials may be logged."""
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(level)
    logging.getLogger("iris_cloud").warning(SDK_WARNING, logging.getLevelName(level))


_LEVELS: Mapping[str, int] = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
}


def configure_cli_logging(verbose: int, level: str | None, sdk_logs: bool) -> None:
    """Log to stderr at ``level``, else WARNING / INFO (``-v``) / DEBUG (``-vv``)."""
    name = level.upper() if level else ("WARNING", "INFO", "DEBUG")[min(verbose, 2)]
    chosen = _LEVELS[name]
    # A no-op where the root logger has handlers already (an embedding app, pytest).
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(chosen)
    quiet_sdk_loggers()
    if sdk_logs:
        enable_sdk_logs(chosen)

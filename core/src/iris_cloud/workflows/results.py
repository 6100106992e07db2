"""Saving result documents: file-name templates and atomic writes.

IRIS names result files dropped to a file system by templates with ``{token}``
placeholders (object model, "Result file-name templates"). :func:`render_name`
fills them from an :class:`~iris_cloud.model.OrderResult`; :func:`save_result`
decodes the embedded document and writes it under a directory (temp file +
rename, so a reader never sees half a PDF) or to an object store.

Tokens (case sensitive): ``patientId``, ``patientLocalId``, ``orderId``,
``orderLocalId``, ``patientFirstName``, ``patientLastName``, ``clientLocalId``
(the site's LocalId), ``departmentLocalId``, the delivery-time tokens ``yyyy``,
``MM``, ``dd``, ``yyyyMMdd_HHmmss``, ``yyyyMMdd``, ``MMddyyyy`` and their
``YEST_`` forms (one day earlier), plus the iris-cloud extension ``ext``
(``pdf``, ``html`` or ``hl7`` from the document type). ``{{`` and ``}}`` are
literal braces.

Safety: each value is reduced to a safe single path segment (separators,
control and reserved characters replaced, no ``.``/``..``, length capped); an
unset value becomes ``unset``. The template itself must be relative and
without ``..``; the final path is checked to stay inside the target directory.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from iris_cloud.errors import AlreadyExists, ConfigurationError
from iris_cloud.model import OrderResult

if TYPE_CHECKING:
    from iris_cloud.ports import ObjectStore

__all__ = [
    "DATE_TOKENS",
    "DEFAULT_TEMPLATE",
    "RESULT_TOKENS",
    "TOKENS",
    "check_template",
    "document_extension",
    "render_name",
    "safe_segment",
    "save_result",
]

DEFAULT_TEMPLATE = "{orderLocalId}.pdf"
UNSET = "unset"
MAX_SEGMENT = 100

RESULT_TOKENS: dict[str, Callable[[OrderResult], object]] = {
    "patientId": lambda r: r.patient.patient_id if r.patient else None,
    "patientLocalId": lambda r: r.patient.local_id if r.patient else None,
    "orderId": lambda r: r.order.patient_order_id if r.order else None,
    "orderLocalId": lambda r: r.order.local_id if r.order else None,
    "patientFirstName": lambda r: r.patient.name.first if r.patient and r.patient.name else None,
    "patientLastName": lambda r: r.patient.name.last if r.patient and r.patient.name else None,
    "clientLocalId": lambda r: r.site.local_id if r.site else None,
    "departmentLocalId": lambda r: r.order.department_id if r.order else None,
    "ext": lambda r: document_extension(r),
}
"""Tokens read from the result."""

_DATE_FORMATS = {
    "yyyy": "%Y",
    "MM": "%m",
    "dd": "%d",
    "yyyyMMdd_HHmmss": "%Y%m%d_%H%M%S",
    "yyyyMMdd": "%Y%m%d",
    "MMddyyyy": "%m%d%Y",
}
DATE_TOKENS: dict[str, tuple[str, int]] = {
    **{tok: (fmt, 0) for tok, fmt in _DATE_FORMATS.items()},
    **{f"YEST_{tok}": (fmt, 1) for tok, fmt in _DATE_FORMATS.items()},
}
"""Delivery-time tokens: strftime format and days to subtract."""

TOKENS = frozenset(RESULT_TOKENS) | frozenset(DATE_TOKENS)
"""Every token a template may use."""

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)
_EXTENSIONS = {"pdf": "pdf", "html": "html", "oru": "hl7"}


def document_extension(result: OrderResult) -> str:
    """``pdf``, ``html`` or ``hl7`` for the result's document type (``bin`` if unknown)."""
    doc = result.results_document
    kind = str(doc.type).lower() if doc is not None and doc.type else "pdf"
    return _EXTENSIONS.get(kind, "bin")


def safe_segment(value: object, *, unset: str = UNSET, limit: int = MAX_SEGMENT) -> str:
    """``value`` as one safe path segment: never empty, ``.``, ``..``, or a separator.

    At most ``limit`` characters; when cut, the suffix (``.pdf``) is kept.
    """
    if value is None:
        return unset
    text = unicodedata.normalize("NFC", str(value)).strip()
    text = _UNSAFE.sub("_", text)
    # Leading dots would hide the file or form '..'; trailing dots and spaces
    # are dropped by Windows, so two names could collide.
    text = text.strip(". ")
    if not text:
        return unset
    if _WINDOWS_RESERVED.match(text):
        text = f"_{text}"
    if len(text) > limit:
        suffix = PurePosixPath(text).suffix
        suffix = suffix if len(suffix) <= 10 else ""
        text = text[: limit - len(suffix)] + suffix
    return text


def check_template(template: str) -> list[str]:
    """The tokens of ``template``; :class:`ConfigurationError` if it is unusable.

    Unusable: unknown token (tokens are case sensitive), a stray brace, an
    absolute path, a ``.``/``..`` segment, a backslash or an empty file name.
    """
    tokens: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        text = match.group(0)
        if text in ("{{", "}}"):
            continue
        token = match.group(1)
        if token is None:
            raise ConfigurationError(f"template {template!r}: unbalanced brace (use {{{{ or }}}})")
        if token not in TOKENS:
            raise ConfigurationError(
                f"template {template!r}: unknown token {{{token}}} (tokens are case sensitive: "
                f"{', '.join(sorted(TOKENS))})"
            )
        tokens.append(token)
    if not template or template.endswith("/"):
        raise ConfigurationError(f"template {template!r}: must end with a file name")
    if "\\" in template or "\x00" in template:
        raise ConfigurationError(f"template {template!r}: use '/' as the separator")
    if template.startswith("/") or re.match(r"^[A-Za-z]:", template):
        raise ConfigurationError(f"template {template!r}: must be a relative path")
    literal = _PLACEHOLDER.sub("x", template)
    if any(part in (".", "..") for part in literal.split("/")):
        raise ConfigurationError(f"template {template!r}: must not contain '.' or '..' segments")
    return tokens


def render_name(
    result: OrderResult,
    template: str = DEFAULT_TEMPLATE,
    *,
    delivered_at: datetime | None = None,
    unset: str = UNSET,
) -> str:
    """The relative file name ``template`` gives for ``result`` (``/``-separated).

    ``delivered_at`` (default: now, local time) feeds the date tokens.
    """
    check_template(template)
    when = delivered_at or datetime.now()

    def fill(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "{{":
            return "{"
        if text == "}}":
            return "}"
        token = match.group(1)
        if token in DATE_TOKENS:
            fmt, days_back = DATE_TOKENS[token]
            return (when - timedelta(days=days_back)).strftime(fmt)
        return safe_segment(RESULT_TOKENS[token](result), unset=unset)

    rendered = _PLACEHOLDER.sub(fill, template)
    # Empty segments ('a//b') collapse; each remaining literal segment is made safe too.
    # 255 bytes is the usual file-name limit; values are already capped at 100.
    parts = [safe_segment(p, unset=unset, limit=200) for p in rendered.split("/") if p]
    if not parts:
        raise ConfigurationError(f"template {template!r} renders to an empty name")
    name = "/".join(parts)
    if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
        raise ConfigurationError(f"template {template!r} renders outside the target")
    return name


def _decode(result: OrderResult) -> bytes | None:
    doc = result.results_document
    if doc is None or not doc.content:
        return None
    return doc.decode()


def save_result(
    result: OrderResult,
    target: str | os.PathLike[str] | ObjectStore,
    template: str = DEFAULT_TEMPLATE,
    *,
    delivered_at: datetime | None = None,
    on_conflict: Literal["number", "replace", "error"] = "number",
    unset: str = UNSET,
) -> str | None:
    """Decode ``result``'s document and write it under ``target`` by ``template``.

    ``target`` is a directory or an :class:`~iris_cloud.ports.ObjectStore`
    (e.g. the profile's ``results_store``). The write is atomic (temp file and
    rename; the store's own atomic put). When the name exists with the same
    content nothing is written (a redelivered result is not saved twice); with
    different content (an addendum, a correction) ``on_conflict`` decides:
    ``number`` writes ``name-2.pdf`` (then ``-3`` ...), ``replace`` overwrites,
    ``error`` raises :class:`AlreadyExists`.

    Returns the path written (a filesystem path, or the object name for a
    store), or ``None`` when the result carries no document. Raises
    :class:`~iris_cloud.errors.ValidationError` when the content does not
    decode and :class:`ConfigurationError` for a bad template.
    """
    data = _decode(result)
    if data is None:
        return None
    name = render_name(result, template, delivered_at=delivered_at, unset=unset)
    if isinstance(target, str | os.PathLike):
        return str(_save_to_dir(data, Path(target), name, on_conflict))
    return _save_to_store(data, target, name, on_conflict)


def _numbered(name: str, n: int) -> str:
    path = PurePosixPath(name)
    return str(path.with_name(f"{path.stem}-{n}{path.suffix}"))


def _save_to_dir(data: bytes, root: Path, name: str, on_conflict: str) -> Path:
    root = root.expanduser()
    root.mkdir(parents=True, exist_ok=True)
    base = root.resolve()
    n = 1
    candidate = name
    while True:
        path = base.joinpath(*candidate.split("/"))
        # Defense in depth: a symlinked directory inside the target must not
        # lead the write elsewhere.
        path.parent.mkdir(parents=True, exist_ok=True)
        real_parent = path.parent.resolve()
        if real_parent != base and base not in real_parent.parents:
            raise ConfigurationError(f"result name {candidate!r} leads outside {base}")
        if not path.exists():
            break
        if path.is_file() and path.read_bytes() == data:
            return path
        if on_conflict == "replace":
            break
        if on_conflict == "error":
            raise AlreadyExists(f"{path} exists with different content")
        n += 1
        candidate = _numbered(name, n)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _save_to_store(data: bytes, store: ObjectStore, name: str, on_conflict: str) -> str:
    from iris_cloud.errors import NotFound, PermissionDenied

    n = 1
    candidate = name
    content_type = _content_type(name)
    while True:
        try:
            store.put(
                candidate, data, content_type=content_type, overwrite=on_conflict == "replace"
            )
            return candidate
        except AlreadyExists:
            if on_conflict == "error":
                raise
            try:
                if store.get(candidate) == data:
                    return candidate
            except (PermissionDenied, NotFound):
                # A write-only results store cannot compare: keep both.
                pass
            n += 1
            candidate = _numbered(name, n)


def _content_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return {
        ".pdf": "application/pdf",
        ".html": "text/html",
        ".htm": "text/html",
        ".hl7": "application/hl7-v2",
    }.get(suffix, "application/octet-stream")

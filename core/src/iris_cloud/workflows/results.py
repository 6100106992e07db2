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
control and reserved characters replaced, no ``.``/``..``, capped at 100 bytes,
a whole segment at 200); an unset value becomes ``unset``. The template itself
must be relative and without ``..``. Below the target directory nothing is
followed: every directory on the way must be a real directory (checked before
any is created, and opened without following links), and only a regular file
counts as an earlier copy of a result.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, Protocol

from iris_cloud import tracing
from iris_cloud._nofollow import open_below
from iris_cloud.errors import AlreadyExists, ConfigurationError, NotFound, PermissionDenied
from iris_cloud.model import OrderResult
from iris_cloud.private import private_dir
from iris_cloud.steps import Call, Steps, drive

if TYPE_CHECKING:
    from iris_cloud.ports import ObjectStore

__all__ = [
    "DATE_TOKENS",
    "DEFAULT_TEMPLATE",
    "RECENT_VERSIONS",
    "RESULT_TOKENS",
    "TOKENS",
    "check_template",
    "document_extension",
    "render_name",
    "safe_segment",
    "save_result",
    "save_steps",
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

    At most ``limit`` bytes of UTF-8 (file systems count bytes: 100 emoji are
    400); when cut, the suffix (``.pdf``) is kept.
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
    if len(text.encode("utf-8")) > limit:
        suffix = PurePosixPath(text).suffix
        suffix = suffix if len(suffix.encode("utf-8")) <= 16 else ""
        text = _cut(text[: len(text) - len(suffix)], limit - len(suffix.encode("utf-8"))) + suffix
    return text


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, on a character boundary."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore").rstrip(". ")


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
    # 255 bytes is the usual file-name limit; values are already capped at 100 bytes,
    # and 200 leaves room for a version number ("-12").
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
    return drive(
        save_steps(
            result,
            target,
            template,
            delivered_at=delivered_at,
            on_conflict=on_conflict,
            unset=unset,
            in_thread=_call,
        )
    )


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def save_steps(
    result: OrderResult,
    target: Any,
    template: str = DEFAULT_TEMPLATE,
    *,
    delivered_at: datetime | None = None,
    on_conflict: str = "number",
    unset: str = UNSET,
    in_thread: Callable[..., Any],
) -> Steps[str | None]:
    """:func:`save_result` as steps (:mod:`iris_cloud.steps`), for a sync or an async target.

    :func:`save_result` drives it with blocking calls, :func:`iris_cloud.aio.save_result`
    awaits them: the same names, versions and span. A store's calls are the
    store's own (awaited when it is async); a directory is written by
    ``in_thread(write, *args)`` (a plain call, or :func:`asyncio.to_thread`).
    """
    to_dir = isinstance(target, str | os.PathLike)
    # The name is left out of the span: a template may put patient data in it.
    with tracing.span("save", {"iris.save.target": "directory" if to_dir else "store"}) as span:
        data = _decode(result)
        if data is None:
            saved = None
        else:
            name = render_name(result, template, delivered_at=delivered_at, unset=unset)
            if to_dir:
                written = yield Call(
                    in_thread, (_save_to_dir, data, Path(target), name, on_conflict)
                )
                saved = str(written)
            else:
                versions = _StoreVersions(target, name, data)
                saved = _numbered(name, (yield from _place_steps(versions, on_conflict)))
        if span is not None:
            span.set_attribute("iris.save.document", saved is not None)
        return saved


def _numbered(name: str, n: int) -> str:
    if n == 1:
        return name
    path = PurePosixPath(name)
    return str(path.with_name(f"{path.stem}-{n}{path.suffix}"))


RECENT_VERSIONS = 16
"""How many of the newest numbered versions a redelivered result is compared with."""


class _Versions(Protocol):
    """The numbered versions of one name (1 is the name itself) in one target.

    Each method answers at once (a directory) or returns the steps that find
    the answer (a store, sync or async): :func:`_ask` takes either.
    """

    def create(self, n: int) -> bool | Steps[bool]:
        """Write version ``n`` unless it exists; whether it was written."""

    def same(self, n: int) -> bool | Steps[bool]:
        """Whether version ``n`` is ours and holds exactly the document."""

    def exists(self, n: int) -> bool | Steps[bool | None] | None:
        """Whether version ``n`` exists; ``None`` when the target cannot tell."""

    def replace(self) -> Steps[None] | None:
        """Write the name itself, over whatever is there."""


def _ask(answer: Any) -> Steps[Any]:
    """A :class:`_Versions` answer: the value itself, or what its steps return."""
    if inspect.isgenerator(answer):
        return (yield from answer)
    return answer


def _place_steps(versions: _Versions, on_conflict: str) -> Steps[int]:
    """Write the document as a new version, or find it already saved; its number.

    Per save this costs O(log n) existence checks and at most
    :data:`RECENT_VERSIONS` + 1 comparisons (only same-size files are read),
    not one read per earlier version: a sender who sends many results for
    one order cannot make every later save slower.
    """
    if (yield from _ask(versions.create(1))) or (yield from _ask(versions.same(1))):
        return 1
    if on_conflict == "error":
        raise AlreadyExists("a result file of that name exists with different content")
    if on_conflict == "replace":
        yield from _ask(versions.replace())
        return 1
    top = yield from _last_version_steps(versions)
    # A redelivery is compared with the newest versions only (the older ones
    # would make each save read every version before it).
    for n in range(top, max(1, top - RECENT_VERSIONS), -1):
        if (yield from _ask(versions.same(n))):
            return n
    n = top + 1
    while not (yield from _ask(versions.create(n))):
        if (yield from _ask(versions.same(n))):  # written meanwhile by a concurrent redelivery
            return n
        n += 1
    return n


def _last_version_steps(versions: _Versions) -> Steps[int]:
    """The highest ``n`` with versions 2..n present (1 when there is no ``-2``).

    Versions are written in order, so their presence is monotone: a
    galloping then binary search finds the end in O(log n) checks. A gap
    (a deleted version) only ends the search early; ``create`` never
    overwrites, so a wrong guess costs a retry, never a file.
    """
    if not (yield from _ask(versions.exists(2))):  # absent, or the target cannot tell
        return 1
    low, high = 2, 4
    while (yield from _ask(versions.exists(high))):
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        if (yield from _ask(versions.exists(mid))):
            low = mid
        else:
            high = mid
    return low


def _save_to_dir(data: bytes, root: Path, name: str, on_conflict: str) -> Path:
    root = private_dir(root.expanduser())
    # The target itself may be a symlink (configured, trusted); nothing below it may.
    base = root.resolve()
    *dirs, filename = name.split("/")
    fd = open_below(base, dirs, create=True)
    try:
        versions = _DirVersions(fd, filename, data)
        try:
            n = drive(_place_steps(versions, on_conflict))
        finally:
            versions.discard()
    finally:
        os.close(fd)
    return base.joinpath(*dirs, _numbered(filename, n))


class _DirVersions:
    """Versions of ``filename`` in the directory ``fd``: written from one temp file.

    The temp file is made once and hard-linked to the chosen name, which
    fails rather than overwrite (two consumers saving two corrections at once
    keep both). Only a regular file counts as ``same``: a planted symlink,
    even to identical content, is never reported as saved.
    """

    def __init__(self, fd: int, filename: str, data: bytes) -> None:
        self.fd = fd
        self.filename = filename
        self.data = data
        self._tmp: str | None = None

    def _temp(self) -> str:
        if self._tmp is None:
            tmp = f".iris-{secrets.token_hex(8)}.part"
            out = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=self.fd,
            )
            self._tmp = tmp
            with os.fdopen(out, "wb") as fh:
                fh.write(self.data)
                fh.flush()
                os.fsync(fh.fileno())
        return self._tmp

    def create(self, n: int) -> bool:
        target = _numbered(self.filename, n)
        if self.exists(n):
            return False  # no temp file for the common redelivery
        try:
            os.link(self._temp(), target, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            # A file system without hard links: rename, checked just before.
            if self.exists(n):
                return False
            os.replace(self._temp(), target, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            self._tmp = None
        return True

    def same(self, n: int) -> bool:
        target = _numbered(self.filename, n)
        try:
            st = os.stat(target, dir_fd=self.fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_size != len(self.data):
                return False
            fh = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return False
            raise
        with os.fdopen(fh, "rb") as src:
            return src.read(len(self.data) + 1) == self.data

    def exists(self, n: int) -> bool:
        try:
            os.stat(_numbered(self.filename, n), dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def replace(self) -> None:
        try:
            os.replace(self._temp(), self.filename, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except IsADirectoryError:
            raise AlreadyExists("a directory has the result file's name") from None
        self._tmp = None

    def discard(self) -> None:
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp, dir_fd=self.fd)
            self._tmp = None


# EPERM: vfat and some network file systems refuse link(2) this way.
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK}
)


class _StoreVersions:
    """Versions of ``name`` in an object store, created by conditional puts.

    The store is sync or async: each answer is steps whose calls the driver
    makes (or awaits).
    """

    def __init__(self, store: Any, name: str, data: bytes) -> None:
        self.store = store
        self.name = name
        self.data = data
        self.content_type = _content_type(name)

    def _put(self, name: str, **options: Any) -> Call:
        options["content_type"] = self.content_type
        return Call(self.store.put, (name, self.data), options)

    def create(self, n: int) -> Steps[bool]:
        try:
            yield self._put(_numbered(self.name, n))
        except AlreadyExists:
            return False
        return True

    def same(self, n: int) -> Steps[bool]:
        try:
            info = yield Call(self.store.info, (_numbered(self.name, n),))
            if info.size != len(self.data):
                return False
            return bool((yield Call(self.store.get, (_numbered(self.name, n),))) == self.data)
        except (PermissionDenied, NotFound):
            # A write-only results store cannot compare: keep both.
            return False

    def exists(self, n: int) -> Steps[bool | None]:
        try:
            return bool((yield Call(self.store.exists, (_numbered(self.name, n),))))
        except PermissionDenied:
            return None  # write-only: numbers are found by trying puts in turn

    def replace(self) -> Steps[None]:
        yield self._put(self.name, overwrite=True)


def _content_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return {
        ".pdf": "application/pdf",
        ".html": "text/html",
        ".htm": "text/html",
        ".hl7": "application/hl7-v2",
    }.get(suffix, "application/octet-stream")

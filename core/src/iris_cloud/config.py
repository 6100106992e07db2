"""Profiles: the endpoints and credentials of one side of the IRIS exchange.

A profile names, per *role*, where messages and objects go:

========================  ========  ================================  ===============
role                      kind      integrator side                   platform side
========================  ========  ================================  ===============
``orders``                broker    send                              receive
``events``                broker    receive                           send
``results``               broker    receive                           send
``gradings``              broker    send (test setups)                receive
``images``                store     write                             read
``results_store``         store     write (saved documents)           (unused)
``claim_check``           store     read + write                      read + write
========================  ========  ================================  ===============

plus ``client_guid`` and the ``consumer`` / ``client`` defaults. Each endpoint
is a URL string or a table ``{url = "...", <option> = ..., <secret> = {env = "VAR"}}``;
options go to the provider's ``from_url`` as keyword arguments.

Sources, later ones winning: ``~/.config/iris-cloud/config.toml``, then
``./iris-cloud.toml`` (or the file named by ``IRIS_CLOUD_CONFIG`` / ``--config``),
then ``IRIS_CLOUD_*`` environment variables (``IRIS_CLOUD_ORDERS=mem://orders``,
``IRIS_CLOUD_CLIENT_GUID=...``, ``IRIS_CLOUD_CONSUMER__CONCURRENCY=8``). The
profile is chosen by ``--profile NAME``, else ``IRIS_CLOUD_PROFILE``, else the
file's ``default_profile``, else ``default``. Top-level role keys in a file
belong to the profile ``default``; ``[profiles.NAME]`` tables name others.

Secrets are never literal in a file: a secret option is ``{env = "VAR"}`` or
``{file = "/run/secrets/x"}``, resolved only when an endpoint is opened, and
masked in every repr and in ``iris-cloud config show``. Programmatic profiles
(:meth:`Profile.from_dict`, used by tests and the demo) may pass literal
secrets; they are held as :class:`pydantic.SecretStr`.

A bad profile (unknown key, malformed URL, unknown scheme, credentials in a
URL) fails when it is loaded with a :class:`~iris_cloud.errors.ConfigurationError`
that names the key; a missing endpoint fails when a command needs it, naming
the role and how to set it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from iris_cloud.claimcheck import DEFAULT_MAX_PAYLOAD_BYTES
from iris_cloud.errors import ConfigurationError
from iris_cloud.steps import Call, Steps, adrive, drive

if TYPE_CHECKING:
    from iris_cloud.aio.ports import AsyncMessageBroker, AsyncObjectStore
    from iris_cloud.ports import MessageBroker, ObjectStore

__all__ = [
    "BROKER_ROLES",
    "ROLES",
    "STORE_ROLES",
    "ClientSettings",
    "ConsumerSettings",
    "Endpoint",
    "Profile",
    "RoleSpec",
    "SecretRef",
    "config_files",
    "is_secret_option",
    "load_profile",
    "mask_url",
    "profile_names",
    "public_options",
]

Side = Literal["integrator", "platform"]
Direction = Literal["send", "receive", "read", "write", "readwrite", "unused"]


@dataclass(frozen=True)
class RoleSpec:
    """What a role is: a broker or a store, and what each side does with it."""

    kind: Literal["broker", "store"]
    integrator: Direction
    platform: Direction
    description: str


ROLES: dict[str, RoleSpec] = {
    "orders": RoleSpec("broker", "send", "receive", "OrderRequests to IRIS"),
    "events": RoleSpec("broker", "receive", "send", "events from IRIS"),
    "results": RoleSpec("broker", "receive", "send", "OrderResults from IRIS"),
    "gradings": RoleSpec("broker", "send", "receive", "GradingSubmissions (test setups)"),
    "images": RoleSpec("store", "write", "read", "exam images (Image First / Order First)"),
    "results_store": RoleSpec("store", "write", "unused", "where result documents are saved"),
    "claim_check": RoleSpec("store", "readwrite", "readwrite", "bodies over the broker's limit"),
}
"""Every role a profile can name, in display order."""

BROKER_ROLES = tuple(r for r, s in ROLES.items() if s.kind == "broker")
STORE_ROLES = tuple(r for r, s in ROLES.items() if s.kind == "store")

_SECRET_NAME = re.compile(
    r"(secret|password|passwd|token|connection_?string|conn_?str|sas|account_?key|"
    r"access_?key|api_?key|private_?key|credential|signature|^sig$|^key$)",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*$")
USER_CONFIG = Path("~/.config/iris-cloud/config.toml")
LOCAL_CONFIG = Path("iris-cloud.toml")


def is_secret_option(name: str) -> bool:
    """Whether an option or URL query parameter of this name carries a credential."""
    return bool(_SECRET_NAME.search(name))


def public_options(scheme: str) -> frozenset[str]:
    """The options of ``scheme`` that may be shown: what its provider declares.

    Providers list them (the ``iris_cloud_public_options`` hook); anything
    else, including every option of a scheme no installed provider serves,
    is masked, whatever its name.
    """
    from iris_cloud.plugins import public_options as declared

    return declared(scheme)


def mask_url(url: str, public: frozenset[str] | None = None) -> str:
    """``url`` with its password and every query value but the ``public`` ones as ``***``.

    ``public`` defaults to :func:`public_options` of the URL's scheme.
    Everything else is kept exactly as written (``local:///dir`` stays so).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    masked = url
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        masked = masked.replace(parts.netloc, f"{parts.username or ''}:***@{host}", 1)
    if parts.query:
        shown = public_options(parts.scheme) if public is None else public
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(k not in shown for k, _ in pairs):
            query = urlencode([(k, v if k in shown else "***") for k, v in pairs], safe="*/:")
            base = masked.split("?", 1)[0]
            masked = f"{base}?{query}" + (f"#{parts.fragment}" if parts.fragment else "")
    return masked


def _url_password(url: str) -> str:
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def _hidden_query(url: str, public: frozenset[str]) -> list[str]:
    try:
        query = urlsplit(url).query
    except ValueError:
        return []
    return [v for k, v in parse_qsl(query, keep_blank_values=True) if k not in public]


def _mask_option(value: Any, public: frozenset[str]) -> Any:
    # A public option may still be a URL with a password in it (endpoint_url).
    if isinstance(value, str) and "://" in value:
        return mask_url(value, public)
    return value


# --------------------------------------------------------------------- endpoints


_GUID = re.compile(  # the ClientGuid IRIS assigns; braces as .NET may print it
    r"\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?"
)


class SecretRef(BaseModel):
    """Where a secret option's value comes from: an environment variable or a file."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.env is None) == (self.file is None):
            raise ValueError('a secret reference is {env = "VAR"} or {file = "PATH"}')
        return self

    def resolve(self, where: str) -> str:
        """The secret's value; :class:`ConfigurationError` naming ``where`` if unavailable."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigurationError(f"{where}: environment variable {self.env} is not set")
            return value
        assert self.file is not None
        path = Path(self.file).expanduser()
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(
                f"{where}: cannot read secrets file {path} ({exc.strerror})"
            ) from None

    def __str__(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"


SecretValue = SecretRef | SecretStr


class Endpoint(BaseModel):
    """One endpoint: its URL, provider options and secret options.

    Built from a URL string or a table; in a table every key but ``url`` and
    ``mirror`` is an option, and an option given as ``{env=...}`` /
    ``{file=...}`` (or, programmatically, any value of a secret-looking name)
    is a secret. ``mirror`` is the endpoint the other side uses when it is not
    the same URL (Pub/Sub: a topic to send, a subscription to receive).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str
    options: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, SecretValue] = Field(default_factory=dict)
    mirror: Endpoint | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_table(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, str):
            return {"url": data}
        if not isinstance(data, Mapping) or "options" in data or "secrets" in data:
            return data
        literal_ok = bool((info.context or {}).get("literal_secrets", True))
        table = dict(data)
        out: dict[str, Any] = {"url": table.pop("url", None), "options": {}, "secrets": {}}
        if out["url"] is None:
            out.pop("url")
        if "mirror" in table:
            out["mirror"] = table.pop("mirror")
        for key, value in table.items():
            if isinstance(value, Mapping) and set(value) <= {"env", "file"} and value:
                out["secrets"][key] = dict(value)
            elif isinstance(value, SecretStr):
                out["secrets"][key] = value
            elif is_secret_option(key) and isinstance(value, str):
                if not literal_ok:
                    raise ValueError(
                        f'option {key!r} is a secret: give it as {{env = "VAR"}} or '
                        '{file = "PATH"}, never literally in a config file'
                    )
                out["secrets"][key] = SecretStr(value)
            else:
                out["options"][key] = value
        return out

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url or url != url.strip() or any(c.isspace() for c in url):
            raise ValueError("malformed URL: empty or contains whitespace")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            raise ValueError("malformed URL") from None
        if not parts.scheme or "://" not in url:
            raise ValueError("malformed URL: expected scheme://..., e.g. mem://orders")
        # urlsplit lower-cases the scheme; providers match it exactly, so check the raw text.
        if not _SCHEME.match(url.split(":", 1)[0]):
            raise ValueError("malformed URL: the scheme must be lower-case letters, digits, +.-")
        if not (parts.netloc or parts.path.strip("/")):
            raise ValueError("malformed URL: names no queue, bucket or path")
        if parts.password is not None:
            raise ValueError(
                "credentials must not be in the URL (URLs get logged); give them as "
                '{env = "VAR"} options'
            )
        for key, _ in parse_qsl(parts.query, keep_blank_values=True):
            if is_secret_option(key):
                raise ValueError(
                    f"query parameter {key!r} looks like a credential; give it as an "
                    '{env = "VAR"} option instead of in the URL'
                )
        return url

    @property
    def scheme(self) -> str:
        """The URL scheme, which picks the provider."""
        return urlsplit(self.url).scheme

    def resolved_options(self, where: str = "endpoint") -> dict[str, Any]:
        """Options plus resolved secrets, as keyword arguments for ``from_url``."""
        opts = dict(self.options)
        for key, secret in self.secrets.items():
            if isinstance(secret, SecretStr):
                opts[key] = secret.get_secret_value()
            else:
                opts[key] = secret.resolve(f"{where}.{key}")
        return opts

    def masked(self) -> dict[str, Any]:
        """A printable form: URL masked, secrets shown as their reference or ``***``."""
        public = public_options(self.scheme)
        out: dict[str, Any] = {"url": mask_url(self.url, public)}
        for key, value in self.options.items():
            out[key] = _mask_option(value, public) if key in public else "***"
        for key, secret in self.secrets.items():
            out[key] = "***" if isinstance(secret, SecretStr) else f"*** ({secret})"
        if self.mirror is not None:
            out["mirror"] = self.mirror.masked()
        return out

    def redact(self, text: str) -> str:
        """``text`` (an error message, say) with every secret of this endpoint as ``***``.

        Secret: any value :meth:`masked` hides (secrets, options the provider
        does not declare public, their query values, URL passwords), also
        when a library quotes it in its own message.
        """
        public = public_options(self.scheme)
        values: list[str] = [_url_password(self.url), *_hidden_query(self.url, public)]
        for key, value in self.options.items():
            if key not in public:
                values.append(str(value))
            elif isinstance(value, str) and "://" in value:
                values += [_url_password(value), *_hidden_query(value, public)]
        for key, secret in self.secrets.items():
            if isinstance(secret, SecretStr):
                values.append(secret.get_secret_value())
            else:
                with contextlib.suppress(ConfigurationError):
                    values.append(secret.resolve(key))
        # Longest first, so a secret containing another is replaced whole.
        for value in sorted({v for v in values if len(v) >= 3}, key=len, reverse=True):
            text = text.replace(value, "***")
        if self.mirror is not None:
            text = self.mirror.redact(text)
        return text

    def __repr__(self) -> str:
        masked = self.masked()
        extra = "".join(f", {k}={v!r}" for k, v in masked.items() if k != "url")
        return f"Endpoint({masked['url']!r}{extra})"

    __str__ = __repr__


# ---------------------------------------------------------------------- settings


class ConsumerSettings(BaseModel):
    """Defaults of :class:`iris_cloud.consumer.Consumer` (``[profiles.X.consumer]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(default=10, ge=1, le=1000)
    """Most messages fetched by one receive call."""
    wait: float = Field(default=5.0, ge=0)
    """Seconds one receive call waits for messages (long poll)."""
    concurrency: int = Field(default=4, ge=1, le=256)
    """Handlers running at once."""
    max_attempts: int = Field(default=5, ge=1)
    """Deliveries of a failing message before it is dead-lettered."""
    backoff_initial: float = Field(default=1.0, ge=0)
    """Delay before the first retry; doubles per attempt."""
    backoff_max: float = Field(default=300.0, ge=0)
    """Longest retry delay."""
    transient_backoff_max: float = Field(default=30.0, gt=0)
    """Longest wait between retries of a failure of the consumer's own side
    (:func:`~iris_cloud.errors.is_transient`: a full disk, a store outage)."""
    max_transient_attempts: int | None = Field(default=None, ge=1)
    """Handler runs failing on the consumer's own side before the message is
    dead-lettered anyway (unset: never; they do not count towards ``max_attempts``)."""
    stop_timeout: float = Field(default=10.0, ge=0)
    """Seconds a stop waits for in-flight handlers to finish and settle; those
    still running then are left, and their messages come back after their lock."""
    lock_renewal_interval: float | None = Field(default=None, gt=0)
    """Seconds between lock renewals of a running handler (default: half the lock)."""
    settle_batch: int = Field(default=10, ge=1, le=100)
    """Most completions settled in one ``complete_many`` call, on brokers with
    ``capabilities.batch_settle`` (1: each message at once)."""
    settle_delay: float = Field(default=0.01, ge=0, le=1.0)
    """Longest a handled message waits for others to be completed with it, in
    seconds (0: at once). A crash meanwhile loses nothing: it comes back."""
    dedupe: str | Endpoint | None = None
    """Where handled message ids / TransactionIds are remembered (off when unset): a
    SQLite file path, or an object-store URL or endpoint table shared by hosts
    (``s3://bucket/dedupe/``; see :func:`iris_cloud.dedupe.open_dedupe`)."""
    dedupe_retention_days: float = Field(default=14.0, gt=0)
    """How long handled ids are remembered."""
    dedupe_claim_seconds: float = Field(default=300.0, gt=0)
    """How long a claim on a message id in the dedupe file holds without being
    refreshed (the lock renewals refresh it): a crashed claimant's claim lapses."""
    health_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve ``/healthz``, ``/readyz`` (and ``/metrics`` with ``metrics``) over HTTP
    on this port (0: any free port; off when unset). See docs/operations.md."""
    health_host: str = "127.0.0.1"
    """The address the health endpoint binds (``0.0.0.0`` for a probe from outside)."""
    ready_within: float | None = Field(default=None, gt=0)
    """``/readyz`` fails when a broker's last successful receive is older than this
    (default: the larger of 60 s and four times ``wait``)."""
    metrics: bool = False
    """Keep Prometheus metrics (``Consumer.metrics``), served at ``/metrics`` on the
    health port; needs the ``iris-cloud[metrics]`` extra."""
    systemd_notify: bool = False
    """Tell systemd ``READY=1``, ``STOPPING=1`` and ``WATCHDOG=1`` over ``$NOTIFY_SOCKET``."""


class ClientSettings(BaseModel):
    """Defaults of :class:`iris_cloud.client.IrisClient` (``[profiles.X.client]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    receipts: str | None = None
    """SQLite file keeping upload receipts (for write-only image stores) across runs."""
    check_images: bool = True
    """Refuse orders whose Image First references do not exist."""
    strict: bool = False
    """Refuse (instead of warn about) enum codes object model 2.3.1 does not know."""


# ----------------------------------------------------------------------- profile


class Profile(BaseModel):
    """The endpoints and settings of one side of the IRIS exchange.

    Build one with :func:`load_profile` (files + environment) or
    :meth:`from_dict`. Open endpoints with :meth:`open_broker` /
    :meth:`open_store`; :meth:`mirror` gives the other side's profile.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str = "default"
    side: Side = "integrator"
    client_guid: str | None = None
    orders: Endpoint | None = None
    events: Endpoint | None = None
    results: Endpoint | None = None
    gradings: Endpoint | None = None
    images: Endpoint | None = None
    results_store: Endpoint | None = None
    claim_check: Endpoint | None = None
    claim_check_max_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, gt=0)
    """Largest claim-checked payload a receiving broker fetches; a pointer to more is
    dead-lettered unfetched (default 16 MiB)."""
    claim_check_sources: tuple[Endpoint, ...] = ()
    """Stores besides ``claim_check`` whose objects a received pointer may name (a
    trusted partner's bucket); a pointer naming any other bucket is dead-lettered."""
    claim_check_delete: bool = False
    """Delete a claim-checked payload once its message is completed, on brokers where
    nobody else can need it (``capabilities.completes_for_all``: queues, not topic
    subscriptions). Off by default: see docs/claim-check.md for the lifecycle rule."""
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    client: ClientSettings = Field(default_factory=ClientSettings)
    source: str | None = Field(default=None, exclude=True)
    """Where the profile was read from (for messages), not a setting."""

    @model_validator(mode="after")
    def _check_schemes(self) -> Self:
        from iris_cloud.plugins import served_schemes, unserved_scheme_message

        problems = []
        for role, spec in ROLES.items():
            endpoint = self.endpoint_or_none(role)
            candidates = [("", endpoint)]
            if endpoint is not None and endpoint.mirror is not None:
                candidates.append((".mirror", endpoint.mirror))
            for suffix, ep in candidates:
                if ep is None:
                    continue
                if ep.scheme not in served_schemes(spec.kind):
                    problems.append(
                        f"{role}{suffix}.url: {unserved_scheme_message(ep.scheme, spec.kind)}"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- construction --------------------------------------------------------
    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        name: str | None = None,
        side: Side | None = None,
        source: str = "<dict>",
    ) -> Profile:
        """A profile from plain data: role -> URL or ``{"url": ..., **options}``, settings.

        Literal secrets are allowed here (tests, the demo) and kept as
        :class:`~pydantic.SecretStr`. Raises :class:`ConfigurationError`
        naming every bad key.
        """
        payload = dict(data)
        if name is not None:
            payload["name"] = name
        if side is not None:
            payload["side"] = side
        payload.setdefault("source", source)
        return _validate(payload, literal_secrets=True)

    # -- access --------------------------------------------------------------
    def endpoint_or_none(self, role: str) -> Endpoint | None:
        """The endpoint of ``role`` or ``None`` when the profile does not name it."""
        if role not in ROLES:
            raise ConfigurationError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        value = getattr(self, role)
        assert value is None or isinstance(value, Endpoint)
        return value

    def endpoint(self, role: str) -> Endpoint:
        """The endpoint of ``role``; :class:`ConfigurationError` naming it when missing."""
        endpoint = self.endpoint_or_none(role)
        if endpoint is None:
            where = f" ({self.source})" if self.source else ""
            table = "" if self.name == "default" else f"[profiles.{self.name}] "
            raise ConfigurationError(
                f"profile {self.name!r}{where} has no {role!r} endpoint "
                f"({ROLES[role].description});"
                f' set {table}{role} = "scheme://..." or IRIS_CLOUD_{role.upper()}'
            )
        return endpoint

    def require(self, *roles: str) -> None:
        """Raise :class:`ConfigurationError` naming the first of ``roles`` that is not set."""
        for role in roles:
            self.endpoint(role)

    @field_validator("client_guid")
    @classmethod
    def _guid(cls, value: str | None) -> str | None:
        if value is not None and not _GUID.fullmatch(value):
            # The value itself is not quoted: errors go to logs.
            raise ValueError(
                "must be a GUID: 32 hex digits as 8-4-4-4-12, optionally in braces "
                "(e.g. 63E3C9EF-66AC-4154-B0C2-494515EB99A7)"
            )
        return value

    def require_client_guid(self) -> str:
        """The profile's ClientGuid; :class:`ConfigurationError` when it is not set."""
        if self.client_guid is None:
            raise ConfigurationError(
                f'profile {self.name!r} has no client_guid; set client_guid = "GUID" or '
                "IRIS_CLOUD_CLIENT_GUID"
            )
        return self.client_guid

    def roles(self) -> list[str]:
        """The roles this profile names, in :data:`ROLES` order."""
        return [r for r in ROLES if getattr(self, r) is not None]

    def direction(self, role: str) -> Direction:
        """What this side does with ``role``: send, receive, read, write, readwrite, unused."""
        spec = ROLES[role]
        return spec.integrator if self.side == "integrator" else spec.platform

    # -- opening -------------------------------------------------------------
    def open_store(self, role: str) -> ObjectStore:
        """Open the store of ``role`` (a new instance; the caller closes it)."""
        from iris_cloud.plugins import open_store

        store: ObjectStore = self._open_store(role, open_store)
        return store

    def open_broker(self, role: str, *, claim_check: ObjectStore | None = None) -> MessageBroker:
        """Open the broker of ``role`` with the claim-check store attached.

        ``claim_check`` reuses an already open store; otherwise the profile's
        ``claim_check`` endpoint (if any) is opened for this broker and closed
        with it.
        """
        from iris_cloud.plugins import open_broker, open_store

        broker: MessageBroker = drive(
            self._open_broker_steps(role, claim_check, open_broker, open_store)
        )
        return broker

    async def open_async_store(self, role: str) -> AsyncObjectStore:
        """:meth:`open_store`, async: an :class:`~iris_cloud.aio.AsyncObjectStore`."""
        from iris_cloud.aio.opening import open_store

        store: AsyncObjectStore = self._open_store(role, open_store)
        return store

    async def open_async_broker(
        self, role: str, *, claim_check: AsyncObjectStore | None = None
    ) -> AsyncMessageBroker:
        """:meth:`open_broker`, async: an :class:`~iris_cloud.aio.AsyncMessageBroker`.

        ``claim_check``, when given, is an async store; the profile's is opened
        async otherwise. A scheme whose provider has no async class raises
        :class:`ConfigurationError` saying so.
        """
        from iris_cloud.aio.opening import open_broker, open_store

        broker: AsyncMessageBroker = await adrive(
            self._open_broker_steps(role, claim_check, open_broker, open_store)
        )
        return broker

    def _open_store(self, role: str, open_store: Callable[..., Any]) -> Any:
        if ROLES.get(role, ROLES["orders"]).kind != "store":
            raise ConfigurationError(f"{role!r} is a broker role; use open_broker")
        endpoint = self.endpoint(role)
        return open_store(endpoint.url, **endpoint.resolved_options(role))

    def _open_broker_steps(
        self,
        role: str,
        claim_check: Any,
        open_broker: Callable[..., Any],
        open_store: Callable[..., Any],
    ) -> Steps[Any]:
        # The sync and async openers differ only in the classes they resolve
        # and in closing the broker again when a claim-check source fails.
        if ROLES.get(role, ROLES["images"]).kind != "broker":
            raise ConfigurationError(f"{role!r} is a store role; use open_store")
        endpoint = self.endpoint(role)
        broker = open_broker(endpoint.url, **endpoint.resolved_options(role))
        if claim_check is None and self.claim_check is not None:
            claim_check = self._open_store("claim_check", open_store)
            _close_with(broker, claim_check)
        if claim_check is not None:
            broker.claim_check = claim_check
            sources = []
            try:
                for index, source in enumerate(self.claim_check_sources):
                    store = open_store(
                        source.url, **source.resolved_options(f"claim_check_sources[{index}]")
                    )
                    _close_with(broker, store)
                    sources.append(store)
            except BaseException:
                yield Call(broker.close)
                raise
            broker.claim_check_sources = tuple(sources)
        broker.claim_check_max_bytes = self.claim_check_max_bytes
        broker.claim_check_delete = self.claim_check_delete
        return broker

    # -- the other side ------------------------------------------------------
    def mirror(self, *, name: str | None = None) -> Profile:
        """The other side's profile: same endpoints (or each one's ``mirror``), side flipped.

        The simulator runs on the mirror of an integrator profile: it receives
        ``orders`` and sends ``events`` / ``results``.
        """
        data: dict[str, Any] = {
            "name": name or f"{self.name}-mirror",
            "side": "platform" if self.side == "integrator" else "integrator",
            "client_guid": self.client_guid,
            "consumer": self.consumer,
            "client": self.client,
            "source": self.source,
            "claim_check_max_bytes": self.claim_check_max_bytes,
            "claim_check_sources": self.claim_check_sources,
            "claim_check_delete": self.claim_check_delete,
        }
        for role in ROLES:
            endpoint = getattr(self, role)
            if endpoint is None:
                continue
            other = endpoint.mirror or endpoint
            data[role] = other.model_copy(update={"mirror": endpoint if endpoint.mirror else None})
        return Profile.model_validate(data)

    # -- display -------------------------------------------------------------
    def masked(self) -> dict[str, Any]:
        """Everything ``config show`` prints: URLs and secrets masked."""
        out: dict[str, Any] = {
            "name": self.name,
            "side": self.side,
            "source": self.source,
            "client_guid": self.client_guid,
        }
        for role in ROLES:
            endpoint = getattr(self, role)
            out[role] = None if endpoint is None else endpoint.masked()
        out["claim_check_max_bytes"] = self.claim_check_max_bytes
        out["claim_check_sources"] = [e.masked() for e in self.claim_check_sources]
        out["claim_check_delete"] = self.claim_check_delete
        out["consumer"] = self.consumer.model_dump()
        dedupe = self.consumer.dedupe
        if isinstance(dedupe, Endpoint):
            out["consumer"]["dedupe"] = dedupe.masked()
        elif dedupe is not None and "://" in dedupe:
            out["consumer"]["dedupe"] = mask_url(dedupe)
        out["client"] = self.client.model_dump()
        return out

    def __repr__(self) -> str:
        roles = ", ".join(f"{r}={getattr(self, r)!r}" for r in self.roles())
        return f"Profile(name={self.name!r}, side={self.side!r}, {roles})"

    __str__ = __repr__


def _close_with(broker: Any, store: Any) -> None:
    # The claim-check store opened for one broker lives as long as the broker.
    original = broker.close
    if inspect.iscoroutinefunction(original):

        async def aclose() -> None:
            try:
                await original()
            finally:
                await store.close()

        broker.close = aclose
        return

    def close() -> None:
        try:
            original()
        finally:
            store.close()

    broker.close = close


def _validate(payload: Mapping[str, Any], *, literal_secrets: bool) -> Profile:
    name = str(payload.get("name", "default"))
    source = payload.get("source")
    try:
        return Profile.model_validate(payload, context={"literal_secrets": literal_secrets})
    except PydanticValidationError as exc:
        raise _config_error(name, source, exc) from None


def _config_error(name: str, source: Any, exc: PydanticValidationError) -> ConfigurationError:
    where = f" ({source})" if source else ""
    lines = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [str(p) for p in err["loc"] if p not in ("options", "secrets")]
        # pydantic reports a union/str-or-table endpoint under a type tag; drop it.
        loc = [p for p in loc if p not in ("Endpoint", "function-before[_from_table()]")]
        path = ".".join(loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{path}: {msg}" if path else msg)
    return ConfigurationError(f"invalid profile {name!r}{where}:\n  " + "\n  ".join(lines))


# ------------------------------------------------------------------------ loading


class _EnvLayer(BaseSettings):
    """The ``IRIS_CLOUD_*`` environment variables (pydantic-settings)."""

    model_config = SettingsConfigDict(
        env_prefix="IRIS_CLOUD_",
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
    )

    profile: str | None = None
    config: str | None = None
    side: str | None = None
    client_guid: str | None = None
    orders: str | None = None
    events: str | None = None
    results: str | None = None
    gradings: str | None = None
    images: str | None = None
    results_store: str | None = None
    claim_check: str | None = None
    consumer: dict[str, Any] | None = None
    client: dict[str, Any] | None = None


def config_files(config_file: str | os.PathLike[str] | None = None) -> list[Path]:
    """The config files read, lowest priority first (only those that exist).

    ``config_file`` (or ``IRIS_CLOUD_CONFIG``) replaces ``./iris-cloud.toml``
    and must exist.
    """
    env = _EnvLayer()
    files = []
    user = USER_CONFIG.expanduser()
    if user.is_file():
        files.append(user)
    explicit = config_file or env.config
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"config file {path} does not exist")
        files.append(path)
    elif LOCAL_CONFIG.is_file():
        files.append(LOCAL_CONFIG.resolve())
    return files


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read ({exc.strerror})") from None


_FILE_KEYS = {"default_profile", "profiles"}


def _profiles_of(
    doc: Mapping[str, Any], path: Path
) -> tuple[str | None, dict[str, dict[str, Any]]]:
    default = doc.get("default_profile")
    if default is not None and not isinstance(default, str):
        raise ConfigurationError(f"{path}: default_profile must be a string")
    tables = doc.get("profiles", {})
    if not isinstance(tables, Mapping):
        raise ConfigurationError(f"{path}: profiles must be a table of [profiles.NAME] tables")
    out: dict[str, dict[str, Any]] = {}
    top = {k: v for k, v in doc.items() if k not in _FILE_KEYS}
    if top:
        out["default"] = dict(top)
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise ConfigurationError(f"{path}: profiles.{name} must be a table")
        out.setdefault(name, {}).update(table)
    return default, out


def profile_names(config_file: str | os.PathLike[str] | None = None) -> list[str]:
    """The profile names the config files define."""
    names: set[str] = set()
    for path in config_files(config_file):
        names.update(_profiles_of(_read_toml(path), path)[1])
    return sorted(names)


def _env_endpoint(value: str) -> Any:
    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except ValueError:
            raise ConfigurationError(
                "an IRIS_CLOUD_<ROLE> value is a URL or a JSON table"
            ) from None
    return value


def load_profile(
    name: str | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Profile:
    """Load a profile from the config files and ``IRIS_CLOUD_*`` variables.

    ``name`` (``--profile``) wins over ``IRIS_CLOUD_PROFILE`` and the files'
    ``default_profile``. ``overrides`` (role -> URL/table, settings) are applied
    last. Raises :class:`ConfigurationError` naming the bad key, or the
    profile when no source defines it.
    """
    env = _EnvLayer()
    default_name: str | None = None
    merged: dict[str, Any] = {}
    sources: list[str] = []
    found = False
    chosen = name or env.profile
    tables_by_file = []
    for path in config_files(config_file):
        file_default, tables = _profiles_of(_read_toml(path), path)
        default_name = file_default or default_name
        tables_by_file.append((path, tables))
    chosen = chosen or default_name or "default"
    for path, tables in tables_by_file:
        if chosen in tables:
            found = True
            sources.append(str(path))
            for key, value in tables[chosen].items():
                if key in ("consumer", "client") and isinstance(value, Mapping):
                    merged[key] = {**merged.get(key, {}), **value}
                else:
                    merged[key] = value
    # Files forbid literal secrets; validate what they gave before the
    # environment (where a literal is just another env var) is layered on.
    if merged:
        _validate({**merged, "name": chosen, "source": ", ".join(sources)}, literal_secrets=False)
    env_values = env.model_dump(exclude_none=True, exclude={"profile", "config"})
    if env_values:
        found = True
        sources.append("environment")
    for key, value in env_values.items():
        if key in ROLES:
            merged[key] = _env_endpoint(value)
        elif key in ("consumer", "client"):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    if overrides:
        found = True
        for key, value in overrides.items():
            merged[key] = value
    if not found and chosen != "default":
        files = ", ".join(str(p) for p in config_files(config_file)) or "no config file found"
        raise ConfigurationError(f"profile {chosen!r} is not defined ({files})")
    merged["name"] = chosen
    merged["source"] = ", ".join(sources) or "defaults"
    return _validate(merged, literal_secrets=True)

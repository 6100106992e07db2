"""The aiobotocore session of an async AWS endpoint: the same options as the sync one."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

try:
    from aiobotocore.session import AioSession
except ImportError as exc:  # the extra is not installed
    raise ImportError(
        "the async AWS classes run on aiobotocore: install 'iris-cloud-aws[async]'"
    ) from exc
from iris_cloud.errors import ConfigurationError
from iris_cloud.logs import get_logger

from iris_cloud_aws._session import AwsSession
from iris_cloud_aws.errors import aws_errors

__all__ = ["AioAwsSession", "LazyClient"]

log = get_logger("iris_cloud_aws")


class AioAwsSession(AwsSession):
    """An :class:`~iris_cloud_aws._session.AwsSession` on an aiobotocore ``AioSession``.

    :meth:`client` returns aiobotocore's client context (``async with`` it, or
    ``await ctx.__aenter__()``); credentials are resolved by aiobotocore's own
    async providers when none are given.
    """

    @staticmethod
    def _session_from(options: Mapping[str, Any], region: str | None) -> Any:
        given = options.get("session")
        if given is not None:
            if not isinstance(given, AioSession):
                raise ConfigurationError(
                    "option session of an async endpoint must be an aiobotocore AioSession"
                )
            return given
        profile = options.get("profile_name") or None
        session = AioSession(profile=profile)
        key = options.get("aws_access_key_id")
        if key:
            session.set_credentials(
                key, options.get("aws_secret_access_key"), options.get("aws_session_token")
            )
        if region:
            session.set_config_variable("region", region)
        return session

    @staticmethod
    def _session_region(session: Any) -> str | None:
        return session.get_config_variable("region")  # type: ignore[no-any-return]

    client_method = "create_client"  # a client context, entered by LazyClient

    @property
    def can_sign(self) -> bool:
        """Whether credentials were given: aiobotocore resolves others only when asked
        (a coroutine), so a store checks again when it first connects."""
        return self.session._credentials is not None or bool(self.session.profile)


class LazyClient:
    """An aiobotocore client opened on first use (under a lock) and closed once."""

    def __init__(self, session: AioAwsSession, service: str, where: str, **config: Any) -> None:
        self._session = session
        self._service = service
        self._where = where
        self._config = config
        self._lock = asyncio.Lock()
        self._context: Any = None
        self.client: Any = None
        self.closed = False

    async def open(self) -> Any:
        """The client, opened now if not yet."""
        if self.client is not None:
            return self.client
        async with self._lock:
            if self.closed:
                raise ConfigurationError(f"{self._where} is closed")
            if self.client is None:
                context = self._session.client(self._service, **self._config)
                with aws_errors("CreateClient", self._where):
                    self.client = await context.__aenter__()
                self._context = context
            return self.client

    async def close(self) -> None:
        """Close the client's connection pool; it cannot be opened again."""
        async with self._lock:
            self.closed = True
            context, self._context, self.client = self._context, None, None
        if context is None:
            return
        try:
            await context.__aexit__(None, None, None)
        except Exception as exc:  # closing must not mask the caller's own error
            log.debug("closing the %s client failed: %s", self._service, type(exc).__name__)

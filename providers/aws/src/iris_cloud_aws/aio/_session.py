"""The aiobotocore session of an async AWS endpoint: the same options as the sync one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiobotocore.session import AioSession
from iris_cloud.errors import ConfigurationError

from iris_cloud_aws._session import AwsSession
from iris_cloud_aws.errors import aws_errors

__all__ = ["AioAwsSession"]


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

    def client(self, service: str, **config: Any) -> Any:
        """aiobotocore's client context for ``service`` (entered by the caller)."""
        with aws_errors("CreateClient", service):
            return self.session.create_client(
                service,
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=self.config(**config),
            )

    @property
    def can_sign(self) -> bool:
        """Whether credentials were given: aiobotocore resolves others only when asked
        (a coroutine), so a store checks again when it first connects."""
        return self.session._credentials is not None or bool(self.session.profile)

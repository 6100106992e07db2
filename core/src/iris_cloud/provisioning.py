"""What ``iris-cloud provision`` shares across providers: plans, role tables, profiles.

A provider's provisioner (``iris_cloud_aws.provision``, ``iris_cloud_gcp.provision``)
builds a :class:`Plan` from a name: the resources of one integrator-owned
exchange and, per side (``integrator``, ``iris``), the :class:`Grant` rows
saying which actions that side's identity holds on which resource. The same
grants produce the identities' policies, the role tables in ``docs/aws.md`` /
``docs/gcp.md`` (:func:`role_table`, kept current by a test through
:func:`replace_block`) and the least-privilege tests, so doc and policy cannot
drift. This module renders plans (:meth:`Plan.to_dict`, :func:`print_plan`)
and writes the two profiles (:func:`write_profiles`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from iris_cloud.errors import IrisCloudError
from iris_cloud.private import private_dir, write_private

__all__ = [
    "SIDES",
    "Grant",
    "Plan",
    "ProvisionError",
    "Resource",
    "print_plan",
    "profile_toml",
    "read_env_file",
    "replace_block",
    "role_table",
    "role_table_is_current",
    "write_profiles",
]

ProvisionSide = Literal["integrator", "iris"]
SIDES: tuple[ProvisionSide, ...] = ("integrator", "iris")
"""The two identities of an exchange: the integrator's and the one handed to IRIS."""


class ProvisionError(IrisCloudError):
    """Provisioning (or, with ``removing``, deprovisioning) stopped part-way: the
    message names the step, the missing right (when that was the cause) and what
    exists already (or was removed); running again completes it."""

    def __init__(self, message: str, *, done: Sequence[str] = (), removing: bool = False) -> None:
        self.done = list(done)
        if removing:
            removed = ", ".join(self.done) or "nothing"
            message += f". Removed so far: {removed}. Run deprovision again to finish"
        elif self.done:
            message += (
                f". Already in place: {', '.join(self.done)}. Run provision again to finish, "
                "or deprovision to remove them"
            )
        else:
            message += ". Nothing was created"
        super().__init__(message)


@dataclass(frozen=True)
class Resource:
    """One resource of a plan: its kind, the logical key grants refer to, its
    provider name / id and the settings it is created with."""

    kind: str
    key: str
    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Grant:
    """One row of the role table: ``side`` may do ``actions`` on resource ``key``.

    ``refused`` lists neighbouring actions the side must *not* hold there; the
    least-privilege tests check both lists against the real service.
    """

    side: ProvisionSide
    role: str
    key: str
    actions: tuple[str, ...]
    purpose: str
    refused: tuple[str, ...] = ()


@dataclass
class Plan:
    """Everything one ``provision`` run creates: resources, grants, policies, profiles."""

    provider: str
    name: str
    resources: list[Resource]
    grants: list[Grant]
    identities: dict[str, str]
    """side -> the identity's name (IAM user, service account)."""
    policies: dict[str, Any]
    """side -> the policy document or bindings granting exactly its :attr:`grants`."""
    notes: list[str] = field(default_factory=list)

    def resource(self, key: str) -> Resource:
        """The resource with logical key ``key``."""
        for res in self.resources:
            if res.key == key:
                return res
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain JSON-ready data (``--dry-run --format json``)."""
        return {
            "provider": self.provider,
            "name": self.name,
            "resources": [asdict(r) | {"settings": dict(r.settings)} for r in self.resources],
            "identities": dict(self.identities),
            "grants": [asdict(g) for g in self.grants],
            "policies": self.policies,
            "notes": list(self.notes),
        }


def print_plan(plan: Plan, console: Any) -> None:
    """A readable rendering of ``plan`` on a plain-text console: resources, grants, policies.

    The CLI's consoles print every string as it is (no markup), so names and
    settings need no escaping.
    """
    from rich.table import Table

    resources = Table(title=f"{plan.provider} resources of {plan.name!r}", title_justify="left")
    for column in ("kind", "name", "settings"):
        resources.add_column(column)
    for res in plan.resources:
        settings = ", ".join(f"{k}={_short(v)}" for k, v in res.settings.items())
        resources.add_row(res.kind, res.name, settings)
    console.print(resources)
    grants = Table(title="rights of each identity", title_justify="left")
    for column in ("identity", "role", "resource", "actions"):
        grants.add_column(column)
    for grant in plan.grants:
        grants.add_row(
            plan.identities[grant.side],
            grant.role,
            plan.resource(grant.key).name,
            ", ".join(grant.actions),
        )
    console.print(grants)
    for side, policy in plan.policies.items():
        console.print(f"policy of {plan.identities[side]} ({side} side):")
        console.print(json.dumps(policy, indent=2), soft_wrap=True)
    for note in plan.notes:
        console.print(f"note: {note}")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


# ------------------------------------------------------------------ role tables


def role_table(grants: Sequence[Grant], resource_names: Mapping[str, str]) -> str:
    """The markdown role table of ``grants`` (one row per grant, both sides).

    ``resource_names`` maps a grant's resource key to how the table names it
    (e.g. ``NAME-orders`` queue).
    """
    lines = [
        "| side | role | resource | allowed | refused (tested) | why |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for g in grants:
        allowed = ", ".join(f"`{a}`" for a in g.actions)
        refused = ", ".join(f"`{a}`" for a in g.refused) or "-"
        lines.append(
            f"| {g.side} | `{g.role}` | {resource_names[g.key]} | {allowed} | {refused} "
            f"| {g.purpose} |"
        )
    return "\n".join(lines) + "\n"


_BLOCK = "<!-- {} role table (generated by {}; do not edit by hand) -->"


def replace_block(text: str, table: str, *, generator: str) -> str:
    """``text`` (a docs page) with the generated role table between its markers.

    The markers are ``<!-- begin role table ... -->`` / ``<!-- end role table ... -->``
    lines; a page without them is an error, so a docs test notices a lost table.
    """
    begin, end = _BLOCK.format("begin", generator), _BLOCK.format("end", generator)
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"no {begin!r} ... {end!r} block in the page")
    return pattern.sub(lambda _: f"{begin}\n{table}{end}", text, count=1)


def role_table_is_current(
    page: Path,
    grants: Sequence[Grant],
    resource_names: Mapping[str, str],
    *,
    generator: str,
    update: bool = False,
) -> bool:
    """Whether docs ``page`` holds the current :func:`role_table` of ``grants``.

    With ``update`` a stale table is rewritten in place (and ``True`` returned).
    """
    text = page.read_text(encoding="utf-8")
    current = replace_block(text, role_table(grants, resource_names), generator=generator)
    if current != text and update:
        page.write_text(current, encoding="utf-8")
        return True
    return current == text


# ------------------------------------------------------------------ profiles


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON string escapes are valid TOML basic-string escapes.
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to a profile")


def profile_toml(profile: Mapping[str, Any], *, header: str) -> str:
    """A profile file: top-level settings (the ``default`` profile), then tables.

    Endpoints are inline tables; secrets appear as ``{ env = "VAR" }``.
    """
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    tables = {k: v for k, v in profile.items() if k in ("consumer", "client")}
    for key, value in profile.items():
        if key not in tables:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, table in tables.items():
        lines.append(f"\n[{key}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def write_profiles(
    out: Path,
    profiles: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, str]],
    *,
    header: str,
) -> list[Path]:
    """Write ``<side>.toml`` for each profile and ``<side>.env`` (0600) with its secrets.

    ``profiles`` maps a file stem (``integrator``, ``iris``) to profile data
    whose secret options are ``{"env": VAR}``; ``secrets`` maps the same stem to
    ``VAR -> value``, written as ``export VAR='value'`` lines for the shell
    (``set -a; . ./integrator.env``) or a process manager's env file.
    ``out`` is created 0700 if missing. Returns the paths written.
    """
    private_dir(out)
    written = []
    for stem, profile in profiles.items():
        path = out / f"{stem}.toml"
        path.write_text(profile_toml(profile, header=header), encoding="utf-8")
        written.append(path)
        values = secrets.get(stem)
        if values:
            env = out / f"{stem}.env"
            write_private(env, "".join(f"export {k}='{v}'\n" for k, v in values.items()))
            written.append(env)
    return written


def read_env_file(path: Path) -> dict[str, str]:
    """The ``VAR -> value`` pairs of an env file :func:`write_profiles` wrote."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"export ([A-Z0-9_]+)='([^']*)'", line.strip())
        if match:
            values[match[1]] = match[2]
    return values

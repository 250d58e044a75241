"""Who may do what through the HTTP API: the roles of per-person tokens, the two shared tokens,
and the caller a request's token makes.

Tokens (config `api`, monitor.app.config.ApiConfig):

- a person's token (`api.people[]`): writes are recorded as that person (`by`), allowed by
  their roles;
- the shared write token (`api.token_env/_file`): admin and integrations; may do everything,
  and names who acts in the request (`by`);
- the status token (`api.status_token_env/_file`): reads only;
- no token: reads, while no status token is configured.

Roles and what they grant (a person has one or more):

| role    | read | acknowledge faults | work orders (报障 … 关闭) | take time out of the assessment |
|---------|------|--------------------|---------------------------|---------------------------------|
| read    | yes  |                    |                           |                                 |
| duty    | yes  | yes                | yes                       |                                 |
| manager | yes  | yes                | yes                       | yes                             |

Work orders: 报障 (a manual report), 认领, 到场, 修复, 更换, classify, note, assign, and 关闭 once
restored.

"Take time out of the assessment" is whatever makes downtime stop counting against the
contractor: cancelling an order (误报/重复: its clocks stop counting), an excluded cause class
(市政, 电力, … monitor.assess.model.Cause), and maintenance windows. Those are a manager's
decision; a duty engineer records what happened on site, closing included once restored.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable, Literal, Protocol, Sequence

from pydantic import SecretStr


class Role(StrEnum):
    """A person's role (config `api.people[].roles`)."""

    READ = "read"
    DUTY = "duty"
    MANAGER = "manager"


class Permission(StrEnum):
    """What an API request needs (each write endpoint names one)."""

    READ = "read"
    FAULT_ACK = "fault_ack"  # acknowledge (认领) a fault
    WORKORDER = "workorder"  # report a fault (故障申告), act on orders: acknowledge … close a restored order
    EXCLUDE = "exclude"  # cancel an order, an excluded cause, maintenance windows


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.READ: frozenset({Permission.READ}),
    Role.DUTY: frozenset({Permission.READ, Permission.FAULT_ACK, Permission.WORKORDER}),
    Role.MANAGER: frozenset(Permission),
}

DOING = {
    Permission.READ: "read",
    Permission.FAULT_ACK: "acknowledge faults",
    Permission.WORKORDER: "act on work orders",
    Permission.EXCLUDE: "take time out of the assessment (cancel an order, an excluded cause, maintenance windows)",
}
"""What a permission allows, as refusals word it."""

FLEETMON = "fleetmon"
"""The name fleetmon's own work-order events carry (monitor.assess.orders.FLEETMON): no person
may act under it."""


def roles_granting(permission: Permission) -> list[Role]:
    """The roles that grant `permission`, in table order."""
    return [role for role in Role if permission in GRANTS[role]]


class PersonToken(Protocol):
    """A person as the config holds them (monitor.app.config.PersonConfig)."""

    name: str
    roles: Sequence[Role]
    token: SecretStr | None


CallerKind = Literal["person", "admin", "status", "anonymous", "unknown"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, by its token.

    - kind: person (a person's token), admin (the shared write token), status (the status
      token), anonymous (no token, reads open), unknown (a bearer token matching none, on a
      read that needs none: only /whoami refuses it).
    - name: the person's name (persons only); roles: theirs (persons only).
    """

    kind: CallerKind
    name: str | None = None
    roles: frozenset[Role] = frozenset()

    @property
    def permissions(self) -> frozenset[Permission]:
        if self.kind == "admin":
            return frozenset(Permission)
        if self.kind == "person":
            return frozenset().union(*(GRANTS[r] for r in self.roles))
        return frozenset({Permission.READ})

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    def refusal(self, permission: Permission) -> str:
        """Why this caller may not do what `permission` allows (for a 403)."""
        needed = " or ".join(r.value for r in roles_granting(permission))
        if self.kind == "person":
            roles = ", ".join(sorted(r.value for r in self.roles))
            return f"{self.name}'s token (roles: {roles}) may not {DOING[permission]}: that needs the {needed} role"
        if self.kind == "status":
            return (f"the status token is read-only: to {DOING[permission]} use a personal token with the {needed} "
                    "role (api.people)")
        return f"no token: to {DOING[permission]} use a personal token with the {needed} role (api.people)"

    def who(self, given: str | None) -> str:
        """The name a write records: a person's own (`given`, the request's `by`, must be absent
        or the same), or for the shared write token the request's `by` (required). Raises
        Refused (403 for another person's name, 400 for a missing or reserved one)."""
        if self.kind == "person":
            assert self.name is not None
            if given is not None and given != self.name:
                raise Refused(403, f"this token belongs to {self.name}: `by` must be absent or {self.name!r}, "
                                   f"not {given!r} (nobody records actions in someone else's name)")
            return self.name
        if given is None:
            raise Refused(400, "`by` is required with the shared write token (who does it?); "
                               "a personal token (api.people) records its person by itself")
        if given.lower() == FLEETMON:
            raise Refused(400, f"`by` {given!r} is reserved for fleetmon's own actions")
        return given


class Refused(Exception):
    """A request refused for who sent it: `status` (400, 403) and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def same(given: str, token: SecretStr) -> bool:
    """`given` is `token`, compared in constant time so that a token cannot be guessed byte by
    byte from response times; surrogatepass: odd bytes make a wrong token, never a crash."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), token.get_secret_value().encode("utf-8", "surrogatepass")
    )


def identify(
    given: str, *, write: SecretStr | None, status: SecretStr | None, people: Iterable[PersonToken]
) -> Caller | None:
    """The caller whose token `given` is, or None. Every configured token is compared, always,
    whichever matches: the time taken does not tell which one nearly matched. Tokens are
    unique (ApiConfig checks), so at most one matches."""
    found: Caller | None = None
    if write is not None and same(given, write):
        found = Caller("admin")
    if status is not None and same(given, status):
        found = Caller("status")
    for person in people:
        if person.token is not None and same(given, person.token):
            found = Caller("person", person.name, frozenset(person.roles))
    return found

"""Sales users and what each may see (pure): per-user API tokens, stored hashed, with a role.

A rep sees the leads they hold; a manager the leads of their team; an admin everything. A lead
someone may not see does not exist for them (404, never 403): its existence is not disclosed.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

Role = Literal["rep", "manager", "admin"]
TOKEN_PREFIX = "lfr_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 suffices: tokens are 256 random bits, nothing a dictionary attack could guess."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class User:
    id: str
    role: Role
    rep_id: str | None = None
    team_id: str | None = None


def may_see(user: User, rep_id: str | None, team_id: str | None) -> bool:
    """Whether `user` may read or act on an assignment held by `rep_id` in `team_id`."""
    if user.role == "admin":
        return True
    if user.role == "manager":
        return team_id is not None and team_id == user.team_id
    return rep_id is not None and rep_id == user.rep_id

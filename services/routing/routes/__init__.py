"""What every routing route reads from the app's state, and who is asking."""

from dataclasses import dataclass
from typing import cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.routing import store
from services.routing.auth import User, hash_token, same_token
from services.routing.config import RoutingSettings
from shared.bus import Publisher
from shared.consumer import Progress
from shared.web import Forbidden, Unauthorized


@dataclass(frozen=True)
class RoutingState:
    settings: RoutingSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    publisher: Publisher
    progress: Progress


def state_of(request: Request) -> RoutingState:
    return cast(RoutingState, request.state.routing)


async def current_user(request: Request) -> User:
    """The bootstrap admin token from the settings, or a user's own token (only its hash is stored)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send `Authorization: Bearer <token>`", field="authorization")
    state = state_of(request)
    if same_token(token, state.settings.admin_token.get_secret_value()):
        return User(id="admin", role="admin")
    async with state.sessions() as session:
        row = await store.user_by_token_hash(session, hash_token(token))
    if row is None:
        raise Unauthorized("unknown or revoked token", field="authorization")
    return User(id=row["id"], role=row["role"], rep_id=row["rep_id"], team_id=row["team_id"])


async def require_admin(user: User = Depends(current_user)) -> User:
    if user.role != "admin":
        raise Forbidden("this needs an admin token", field="authorization", rule="role")
    return user

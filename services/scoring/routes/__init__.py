"""What every scoring route reads from the app's state, and the admin check."""

from dataclasses import dataclass
from typing import cast

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.scoring.config import ScoringSettings
from services.scoring.consumer import Models
from shared.bus import Publisher
from shared.consumer import Progress
from shared.web import require_bearer


@dataclass(frozen=True)
class ScoringState:
    settings: ScoringSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    publisher: Publisher
    progress: Progress
    models: Models


def state_of(request: Request) -> ScoringState:
    return cast(ScoringState, request.state.scoring)


def require_admin(request: Request) -> None:
    require_bearer(request, state_of(request).settings.admin_token.get_secret_value(), "changing the model")

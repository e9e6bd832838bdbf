"""Settings common to every service, read from `LEADFLOW_*` environment variables."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Topics(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_TOPIC_", extra="ignore")

    touches: str = "leadflow.touches"
    deals: str = "leadflow.deals"
    leads: str = "leadflow.leads"
    assignments: str = "leadflow.assignments"
    dead_letters: str = "leadflow.dead-letters"

    def all(self) -> list[str]:
        return [self.touches, self.deals, self.leads, self.assignments, self.dead_letters]


class LeadflowSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    database_url: str = Field(
        "postgresql+asyncpg://postgres:@/postgres?host=.leadflow/pg",
        description="SQLAlchemy async URL; the embedded server listens on a Unix socket in its folder.",
    )
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_partitions: int = 6
    topic_replication: int = Field(
        1,
        ge=1,
        le=10,
        description="Replicas of each topic Leadflow creates: 3 on a production cluster, 1 on one broker.",
    )
    topics: Topics = Field(default_factory=Topics)
    log_level: str = "INFO"
    publish_timeout_s: float = Field(
        5.0, description="How long a request waits for the broker's ack before answering 503."
    )
    retry_after_s: int = 5

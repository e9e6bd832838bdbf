from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.config import LeadflowSettings


class RoutingSettings(LeadflowSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias="LEADFLOW_ROUTING_HOST")
    port: int = Field(8003, validation_alias="LEADFLOW_ROUTING_PORT")
    admin_token: SecretStr = Field(description="Bearer token for the admin API and for creating user tokens.")
    secret_key: SecretStr = Field(description="Derives each team's webhook signing secret.")
    consumer_group: str = Field("routing", validation_alias="LEADFLOW_ROUTING_GROUP")
    sla_sweep_s: float = Field(30.0, gt=0, description="How often open assignments are checked for SLA breaches.")
    webhook_poll_s: float = Field(0.5, gt=0, description="How often due webhook deliveries are looked for.")
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_max_attempts: int = Field(8, ge=1, description="Failed deliveries after which one is dead-lettered.")
    webhook_first_retry_s: float = Field(2.0, gt=0, description="Wait after the first failure; doubles each time.")
    webhook_max_retry_s: float = Field(3600.0, gt=0)

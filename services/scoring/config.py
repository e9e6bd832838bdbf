from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.config import LeadflowSettings


class ScoringSettings(LeadflowSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias="LEADFLOW_SCORING_HOST")
    port: int = Field(8002, validation_alias="LEADFLOW_SCORING_PORT")
    admin_token: SecretStr = Field(description="Bearer token for changing the scoring model.")
    consumer_group: str = Field("scoring", validation_alias="LEADFLOW_SCORING_GROUP")
    recycle_sweep_s: float = Field(60.0, gt=0, description="How often MQLs are checked for decayed engagement.")
    max_batch: int = Field(
        2000,
        ge=1,
        le=20000,
        validation_alias="LEADFLOW_SCORING_MAX_BATCH",
        description="Most touches fetched per poll; a poll's touches of a partition commit together.",
    )

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.config import LeadflowSettings


class ReportingSettings(LeadflowSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias="LEADFLOW_REPORTING_HOST")
    port: int = Field(8004, validation_alias="LEADFLOW_REPORTING_PORT")
    admin_token: SecretStr = Field(description="Bearer token for editing campaigns, costs and targets.")
    consumer_group: str = Field("reporting", validation_alias="LEADFLOW_REPORTING_GROUP")
    bootstrap_resamples: int = Field(
        100, ge=0, le=2000, description="Resamples behind the Markov model's confidence range."
    )

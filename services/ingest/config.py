from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.config import LeadflowSettings


class IngestSettings(LeadflowSettings):
    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", validation_alias="LEADFLOW_INGEST_HOST")
    port: int = Field(8001, validation_alias="LEADFLOW_INGEST_PORT")
    public_url: str = Field(
        "http://127.0.0.1:8001",
        validation_alias="LEADFLOW_INGEST_PUBLIC_URL",
        description="Where browsers and providers reach ingest; used in tracking snippets, links and QR codes.",
    )
    admin_token: SecretStr = Field(description="Bearer token for /v1/admin endpoints.")
    secret_key: SecretStr = Field(
        description="Signs email-link tokens and encrypts provider signing secrets at rest.", min_length=16
    )
    source_cache_s: float = Field(5.0, description="How long a source lookup is cached; disabling takes this long.")
    counts_flush_s: float = 1.0
    default_rate_limit_per_s: float = 200.0
    webhook_tolerance_s: int = Field(300, description="Replay window for timestamped webhook signatures.")

"""Where the Hugging Face Hub is and how to reach it: a shared section of the configuration, read by the
roles that talk to the Hub (keys `hf_token`, `hf_endpoint`, `hf_viewer_endpoint`; HF_TOKEN and HF_ENDPOINT
are honoured too)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class HubSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretStr | None = Field(None, description="a Hugging Face token (gated datasets)")
    endpoint: str = Field("https://huggingface.co", description="the Hub API")
    viewer_endpoint: str = Field("https://datasets-server.huggingface.co", description="the dataset viewer API")
    cache_ttl_s: float = Field(86400.0, ge=0, description="how long a Hub answer is reused without asking "
                               "(then revalidated by its ETag); 0: always ask")
    max_retries: int = Field(4, ge=0, description="retries of a Hub call answered 429 (after its Retry-After), "
                             "5xx or not at all")

    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token else None

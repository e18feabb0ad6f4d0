"""Where the Hugging Face Hub is and how to reach it: a shared section of the configuration, read by the
roles that talk to the Hub (keys `hf_token`, `hf_endpoint`, `hf_viewer_endpoint`, …; HF_TOKEN and
HF_ENDPOINT are honoured too). With no endpoint set, the Hub is the offline mirror (`gymforge hub serve`,
started by `gymforge run`) on `hf_mirror_port`; `HF_ENDPOINT=https://huggingface.co` is the real Hub."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

HUB = "https://huggingface.co"
HUB_VIEWER = "https://datasets-server.huggingface.co"


class HubSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretStr | None = Field(None, description="a Hugging Face token (gated datasets)")
    endpoint: str | None = Field(None, description="the Hub API, e.g. https://huggingface.co; none: the "
                                 "offline mirror on mirror_port")
    viewer_endpoint: str | None = Field(None, description=f"the dataset viewer API; none: {HUB_VIEWER} for "
                                        f"{HUB}, else the endpoint itself (the mirror answers both)")
    mirror_port: int = Field(8767, ge=0, le=65535, description="the offline Hub mirror's port, when no endpoint "
                             "is set")
    mirror_dir: Path | None = Field(None, description="the offline Hub mirror's directory (default: "
                                    "<data dir>/hub-mirror)")
    cache_ttl_s: float = Field(86400.0, ge=0, description="how long a Hub answer is reused without asking "
                               "(then revalidated by its ETag); 0: always ask")
    max_retries: int = Field(4, ge=0, description="retries of a Hub call answered 429 (after its Retry-After), "
                             "5xx or not at all")

    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token else None

    @property
    def uses_mirror(self) -> bool:
        return not self.endpoint

    def mirror_url(self) -> str:
        return f"http://127.0.0.1:{self.mirror_port}"

    def api_url(self) -> str:
        return (self.endpoint or self.mirror_url()).rstrip("/")

    def viewer_url(self) -> str:
        if self.viewer_endpoint:
            return self.viewer_endpoint.rstrip("/")
        return HUB_VIEWER if self.api_url() == HUB else self.api_url()

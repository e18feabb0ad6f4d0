"""Configuration: flags > environment (`GYMFORGE_*`) > a TOML file > defaults.

The TOML file is `$GYMFORGE_CONFIG`, else `./gymforge.toml` when present; keys are the field names below
(flat, or under a `[gymforge]` table). Every field can be set by the environment variable
`GYMFORGE_<FIELD>` (upper case); a few well-known variables (OPENAI_BASE_URL, OPENAI_API_KEY, HF_TOKEN,
HF_ENDPOINT) are honoured as well.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from gymforge.errors import UserError

ENV_PREFIX = "GYMFORGE_"
WELL_KNOWN_ENV = {
    "openai_base_url": "OPENAI_BASE_URL",
    "openai_api_key": "OPENAI_API_KEY",
    "hf_token": "HF_TOKEN",
    "hf_endpoint": "HF_ENDPOINT",
}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # bus
    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_creds: str | None = None
    nats_tls_ca: str | None = None
    nats_tls_cert: str | None = None
    nats_tls_key: str | None = None
    embedded_nats: bool = True  # `run` starts the embedded server when nothing answers at a local nats_url
    duplicate_window_s: float = 7200.0
    max_deliver: int = Field(default=5, ge=1)
    shutdown_grace_s: float = 20.0
    ack_wait_s: float | None = Field(default=None, gt=0)  # every role's ack wait (default: each role's own)

    # storage
    data_dir: Path = Path(".gymforge")

    # logging
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "console", "json"] = "auto"

    # models
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    teacher_model: str | None = None
    teacher_port: int = Field(default=8765, ge=0, le=65535)  # the offline teacher, when no endpoint is set
    teacher_defect_rate: float = Field(default=0.5, ge=0.0, le=1.0)
    solver_base_url: str | None = None
    solver_api_key: SecretStr | None = None
    solver_model: str | None = None
    llm_concurrency: int = Field(default=16, ge=1)
    llm_timeout_s: float = 120.0
    llm_max_retries: int = Field(default=6, ge=0)
    budget_usd: float | None = None
    budget_tokens: int | None = None
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)  # model -> ($/1M in, $/1M out)

    # pipeline
    sandbox: Literal["bwrap", "docker", "process"] = "bwrap"
    attempts: int = Field(default=4, ge=1)
    debug_rounds: int = Field(default=3, ge=1)
    solver_action_format: Literal["thought_action", "tool_call"] = "thought_action"
    solver_max_steps: int = Field(default=50, ge=1)
    solver_max_cost_usd: float = Field(default=4.0, gt=0)
    solver_max_tokens: int = Field(default=2_000_000, ge=1)  # sent + received per episode
    solver_context_tokens: int = Field(default=64_000, ge=1000)
    solver_wall_time_s: float = Field(default=3600.0, gt=0)
    solver_command_timeout_s: float = Field(default=25.0, gt=0)  # ordinary commands; python gets training_timeout
    filter_mode: Literal["beat", "match", "any"] = "beat"
    filter_max_tokens: int = Field(default=48_000, ge=1)
    hf_token: SecretStr | None = None
    hf_endpoint: str = "https://huggingface.co"
    hf_viewer_endpoint: str = "https://datasets-server.huggingface.co"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "gymforge.db"

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else value


def _toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        env_path = os.environ.get(ENV_PREFIX + "CONFIG")
        path = Path(env_path) if env_path else Path("gymforge.toml")
        if not env_path and not path.exists():
            return {}
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} not found: create it or unset {ENV_PREFIX}CONFIG") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    return dict(data.get("gymforge", data))


def _env(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        key = ENV_PREFIX + name.upper()
        if key in environ and environ[key] != "":
            out[name] = environ[key]
        elif name in WELL_KNOWN_ENV and environ.get(WELL_KNOWN_ENV[name]):
            out[name] = environ[WELL_KNOWN_ENV[name]]
    return out


def load(flags: dict[str, Any] | None = None, *, config_file: Path | None = None,
         environ: dict[str, str] | None = None) -> Settings:
    """Merge the layers; a bad value gives a UserError naming the field and its source."""
    layers = [("config file", _toml(config_file)), ("environment", _env(dict(os.environ if environ is None else environ))),
              ("flags", {k: v for k, v in (flags or {}).items() if v is not None})]
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged.update(layer)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        source = next((name for name, layer in reversed(layers) if field in layer), "settings")
        hint = f" ({ENV_PREFIX}{field.upper()})" if source == "environment" else ""
        raise UserError(f"bad setting {field}{hint} from {source}: {err['msg']}") from None

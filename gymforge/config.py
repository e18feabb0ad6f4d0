"""Configuration: flags > environment (`GYMFORGE_*`) > a TOML file > defaults. The only module that reads
the environment.

The TOML file is `$GYMFORGE_CONFIG`, else `./gymforge.toml` when present. Every setting has one flat key:
a core field's name (`nats_url`), or a section's prefix and field (`solver_max_steps`, `sandbox_memory_mb`,
`hf_token`), or the alias a field declares (`attempts`, `debug_rounds`, `sandbox`). Keys are written flat
(optionally under a `[gymforge]` table) or as fields of a table named by the section (`[solver]
max_steps = 20`). The environment variable of a key is `GYMFORGE_<KEY>`; a few well-known variables
(OPENAI_BASE_URL, OPENAI_API_KEY, HF_TOKEN, HF_ENDPOINT) are honoured as well.

The sections are the shared ones (`sandbox`: sandbox/settings.py, `hub`: catalog/settings.py) and one per
role, taken from the role's declaration (its `Settings` model, agents/roles.py): no default is stated here.
An unknown key, or a value of the wrong type, is a one-line error naming the key and where it came from.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, SerializeAsAny, ValidationError, field_validator

from agents.roles import ROLES
from agents.runtime import Agent, RoleSettings
from catalog.settings import HubSettings
from gymforge.errors import UserError
from sandbox.settings import SandboxSettings

ENV_PREFIX = "GYMFORGE_"
WELL_KNOWN_ENV = {
    "openai_base_url": "OPENAI_BASE_URL",
    "openai_api_key": "OPENAI_API_KEY",
    "hf_token": "HF_TOKEN",
    "hf_endpoint": "HF_ENDPOINT",
}
M = TypeVar("M", bound=BaseModel)
SHARED = {"sandbox": (SandboxSettings, "sandbox"), "hub": (HubSettings, "hf")}  # section -> (model, key prefix)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # bus
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS server URL (`run` and the reading commands start the embedded server on a local URL when nothing answers)")
    nats_user: str | None = Field(None, description="NATS user")
    nats_password: SecretStr | None = Field(None, description="NATS password")
    nats_token: SecretStr | None = Field(None, description="NATS token")
    nats_creds: str | None = Field(None, description="NATS creds file")
    nats_tls_ca: str | None = Field(None, description="CA certificate for NATS over TLS")
    nats_tls_cert: str | None = Field(None, description="client certificate (mutual TLS)")
    nats_tls_key: str | None = Field(None, description="client key (mutual TLS)")
    embedded_nats: bool = Field(True, description="`run` and the reading commands start the embedded server on the data dir's store when nothing answers at a local nats_url")
    duplicate_window_s: float = Field(7200.0, description="JetStream's duplicate window (covers redelivery of long episodes)")
    max_deliver: int = Field(default=5, ge=1, description="deliveries of a failing message before it is dead-lettered")
    shutdown_grace_s: float = Field(20.0, description="how long in-flight work may finish after SIGTERM")
    ack_wait_s: float | None = Field(default=None, gt=0, description="every role's ack wait (default: each role's own)")

    # storage
    data_dir: Path = Field(Path(".gymforge"), description="NATS store, SQLite store, catalog, caches")

    # logging
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="debug, info, warning or error")
    log_format: Literal["auto", "console", "json"] = Field("auto", description="auto (console on a TTY, JSON otherwise), console or json")

    # models
    openai_base_url: str | None = Field(None, description="the teacher's OpenAI-compatible endpoint (unset: the offline teacher)")
    openai_api_key: SecretStr | None = Field(None, description="its API key")
    teacher_model: str | None = Field(None, description="the teacher's model (gpt-5 when an endpoint is set)")
    teacher_port: int = Field(default=8765, ge=0, le=65535, description="the offline teacher's port, when no endpoint is set")
    teacher_defect_rate: float = Field(default=0.5, ge=0.0, le=1.0, description="the offline teacher's share of first drafts with a planted defect")
    teacher_style: Literal["plain", "think", "reasoning_field", "markdown", "tool_object", "diff", "cutoff", "mixed"] = Field(
        "plain", description="how the offline teacher dresses its replies, as some real model would (teacher/styles.py)")
    solver_base_url: str | None = Field(None, description="the solver's endpoint (default: the teacher's)")
    solver_api_key: SecretStr | None = Field(None, description="its API key")
    llm_concurrency: int = Field(default=16, ge=1, description="model calls in flight per endpoint")
    llm_timeout_s: float = Field(120.0, description="a model call's timeout")
    llm_max_retries: int = Field(default=6, ge=0, description="retries of 429, 5xx and timeouts")
    budget_usd: float | None = Field(None, description="spend limit in USD (none: no limit)")
    budget_tokens: int | None = Field(None, description="spend limit in tokens (none: no limit)")
    prices: dict[str, tuple[float, float] | tuple[float, float, float]] = Field(
        default_factory=dict, description="model -> [$ per 1M input, $ per 1M output(, $ per 1M cached input)], "
        "merged over the built-in table; a JSON object in the environment")

    # sections: shared ones, and each role's own settings (keyed by role name)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    hub: HubSettings = Field(default_factory=HubSettings)
    roles: dict[str, SerializeAsAny[RoleSettings]] = Field(default_factory=dict)

    @field_validator("prices", mode="before")
    @classmethod
    def _prices_json(cls, value: Any) -> Any:
        """The environment gives a JSON object: {"my-model": [0.5, 1.5, 0.05]}."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not JSON ({exc})") from None
        return value

    @property
    def db_path(self) -> Path:
        return self.data_dir / "gymforge.db"

    def value(self, key: str) -> Any:
        """Any key's value (`solver_max_steps`, `hf_token`, `nats_url`)."""
        k = KEYS[key]
        if k.section is None:
            return getattr(self, k.field)
        holder = getattr(self, k.section) if k.section in SHARED else self.role(k.section)
        return getattr(holder, k.field)

    def secret(self, key: str) -> str | None:
        value = self.value(key)
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    def role(self, role: str) -> RoleSettings:
        """A role's settings, shared sections filled in (see `role_settings`)."""
        return role_settings(ROLES[role], self)

    def with_keys(self, values: dict[str, Any]) -> Settings:
        """These settings with some keys set (e.g. a command's own flags); validated like any layer."""
        return _build(self.flat() | {k: v for k, v in values.items() if v is not None}, [("flags", values)])

    def flat(self) -> dict[str, Any]:
        """Every key's current value."""
        return {key: self.value(key) for key in KEYS}


CORE_FIELDS = tuple(f for f in Settings.model_fields if f not in ("sandbox", "hub", "roles"))


@dataclass(frozen=True)
class Key:
    name: str  # the flat key
    section: str | None  # None: a core field; a shared section's or a role's name
    field: str
    description: str = ""


def role_settings(role: type[Agent], s: Settings) -> RoleSettings:
    """The settings a role is built with: its own knobs as configured, and each field typed as a shared
    section (SandboxSettings, HubSettings) set to that section."""
    own = s.roles.get(role.role) or role.Settings()
    shared = {name: getattr(s, section) for name, section in _shared_fields(role.Settings).items()}
    return own.model_copy(update=shared) if shared else own


def _shared_fields(model: type[BaseModel]) -> dict[str, str]:
    """field -> the shared section it takes its value from."""
    types = {m: name for name, (m, _) in SHARED.items()}
    return {f: types[info.annotation] for f, info in model.model_fields.items() if info.annotation in types}


def _keys() -> dict[str, Key]:
    keys = {f: Key(f, None, f) for f in CORE_FIELDS}
    sections = [(name, model, prefix) for name, (model, prefix) in SHARED.items()]
    sections += [(name, cls.Settings, name) for name, cls in ROLES.items()]
    for section, model, prefix in sections:
        shared = _shared_fields(model)
        for f, info in model.model_fields.items():
            if f in shared:
                continue
            name = info.alias or f"{prefix}_{f}"
            if name in keys:
                raise AssertionError(f"setting key {name} is declared twice ({keys[name].section} and {section})")
            keys[name] = Key(name, section, f, info.description or "")
    return keys


KEYS = _keys()
SECTION_PREFIXES = {prefix: name for name, (_, prefix) in SHARED.items()} | {name: name for name in ROLES}


# --- layers ---------------------------------------------------------------------------------


def _unknown(key: str, where: str) -> UserError:
    close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.75)
    hint = f": did you mean {close[0]}?" if close else ": `gymforge settings` lists them"
    return UserError(f"unknown setting {key!r} in {where}{hint}")


def _toml(path: Path | None) -> tuple[str, dict[str, Any]]:
    if path is None:
        env_path = os.environ.get(ENV_PREFIX + "CONFIG")
        path = Path(env_path) if env_path else Path("gymforge.toml")
        if not env_path and not path.exists():
            return "config file", {}
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} not found: create it or unset {ENV_PREFIX}CONFIG") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    where = f"config file {path}"
    return where, _flatten(dict(data.get("gymforge", data)), where)


def _flatten(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Flat keys, with `[section]` tables (a role's, `sandbox`, `hf`) turned into `<prefix>_<field>` keys."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        section = SECTION_PREFIXES.get(name)
        if isinstance(value, dict) and section is not None:
            by_field = {k.field: k.name for k in KEYS.values() if k.section == section}
            for field, v in value.items():
                if field not in by_field:
                    raise _unknown(f"{name}.{field}", where)
                out[by_field[field]] = v
        elif name in KEYS:
            out[name] = value
        else:
            raise _unknown(name, where)
    return out


def _env(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in KEYS:
        var = ENV_PREFIX + name.upper()
        if environ.get(var, "") != "":
            out[name] = environ[var]
        elif name in WELL_KNOWN_ENV and environ.get(WELL_KNOWN_ENV[name]):
            out[name] = environ[WELL_KNOWN_ENV[name]]
    known = {ENV_PREFIX + k.upper() for k in KEYS} | {ENV_PREFIX + "CONFIG"}
    for var in environ:  # a near-miss of a setting's variable is a typo, not another program's variable
        if var.startswith(ENV_PREFIX) and var not in known:
            close = difflib.get_close_matches(var, known, n=1, cutoff=0.9)
            if close:
                raise UserError(f"unknown setting {var!r} in the environment: did you mean {close[0]}?")
    return out


def load(flags: dict[str, Any] | None = None, *, config_file: Path | None = None,
         environ: dict[str, str] | None = None) -> Settings:
    """Merge the layers; an unknown key or a bad value gives a UserError naming the key and its source."""
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    for name in given:
        if name not in KEYS:
            raise _unknown(name, "flags")
    where, toml = _toml(config_file)
    layers = [(where, toml), ("environment", _env(dict(os.environ if environ is None else environ))),
              ("flags", given)]
    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged.update(layer)
    return _build(merged, layers)


def _build(values: dict[str, Any], layers: list[tuple[str, dict[str, Any]]]) -> Settings:
    """Validate flat key values section by section into Settings."""
    core: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        key = KEYS[name]
        if key.section is None:
            core[name] = value
        else:
            sections.setdefault(key.section, {})[key.field] = value
    shared = {name: _validate(model, sections.get(name, {}), name, layers) for name, (model, _) in SHARED.items()}
    roles = {name: _validate(cls.Settings, sections.get(name, {}), name, layers) for name, cls in ROLES.items()}
    return _validate(Settings, {**core, **shared, "roles": roles}, None, layers)


def _validate(model: type[M], data: dict[str, Any], section: str | None,
              layers: list[tuple[str, dict[str, Any]]]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        key = next((k.name for k in KEYS.values() if k.section == section and field in (k.field, k.name)), field)
        source = next((name for name, layer in reversed(layers) if key in layer), "settings")
        hint = f" ({ENV_PREFIX}{key.upper()})" if source == "environment" else ""
        raise UserError(f"bad setting {key}{hint} from {source}: {err['msg']}") from None

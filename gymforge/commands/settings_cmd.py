"""`gymforge settings [--json] [--section S]`: every setting's key, environment variable, value in force
(secrets masked) and meaning, read from the declarations (core fields, the shared sections, each role's
Settings model)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import SecretStr

from gymforge.app import with_settings
from gymforge.config import ENV_PREFIX, KEYS, SECTION_PREFIXES, WELL_KNOWN_ENV, Settings
from gymforge.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("settings", help="list every setting: key, environment variable, value, meaning")
    p.add_argument("--json", action="store_true", help="one JSON object per setting, in a list")
    p.add_argument("--section", default=None, help="only this section: core, sandbox, hub or a role")
    p.set_defaults(func=with_settings(cmd_settings))


def shown(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "***" if value.get_secret_value() else None
    return str(value) if not isinstance(value, bool | int | float | str | list | dict | type(None)) else value


def rows(s: Settings, section: str | None = None) -> list[dict[str, Any]]:
    out = []
    for key in KEYS.values():
        where = key.section or "core"
        if section is not None and where != section:
            continue
        env = ENV_PREFIX + key.name.upper()
        if key.name in WELL_KNOWN_ENV:
            env += f" | {WELL_KNOWN_ENV[key.name]}"
        out.append({"key": key.name, "section": where, "env": env, "value": shown(s.value(key.name)),
                    "description": key.description})
    return out


def cmd_settings(args: argparse.Namespace, s: Settings) -> int:
    sections = {"core", *SECTION_PREFIXES.values()}
    if args.section is not None and args.section not in sections:
        raise UserError(f"unknown section {args.section!r}: choose one of {', '.join(sorted(sections))}")
    table = rows(s, args.section)
    if args.json:
        print(json.dumps(table, indent=2, default=str))
        return 0
    width = max(len(r["key"]) for r in table)
    for r in table:
        about = f"  {r['description']}" if r["description"] else ""
        print(f"{r['key']:<{width}}  {json.dumps(r['value'], default=str)}{about}")
    return 0

"""The `gymforge` command line. Every command is a module under gymforge/commands (or a *_cli module)
exposing `register(subparsers)`; bad input ends in one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gymforge import config, logs
from gymforge.errors import UserError

EXIT_INTERRUPTED = 130


def _modules() -> list:
    from gymforge import catalog_cli, export_hf, export_sft, export_traj, sandbox_cli
    from gymforge import mlgym as export_mlgym
    from gymforge.commands import (
        agent_cmds,
        budget_cmd,
        bus_cmds,
        check_cmd,
        hub_cmd,
        run_cmd,
        settings_cmd,
        teacher_cmd,
        web_cmd,
    )

    return [run_cmd, agent_cmds, bus_cmds, teacher_cmd, check_cmd, hub_cmd, budget_cmd, catalog_cli, sandbox_cli, export_mlgym,
            export_sft, export_traj, export_hf, web_cmd, settings_cmd]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UserError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="gymforge", description="Topics in, validated ML tasks and agent trajectories out.")
    p.add_argument("--config", type=Path, default=None, help="TOML config file (default: ./gymforge.toml)")
    p.add_argument("--data-dir", type=Path, default=None, help="state directory (GYMFORGE_DATA_DIR)")
    p.add_argument("--nats-url", default=None, help="NATS server (GYMFORGE_NATS_URL)")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default=None, choices=["auto", "console", "json"])
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in _modules():
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        flags = {"data_dir": args.data_dir, "nats_url": args.nats_url, "log_level": args.log_level,
                 "log_format": args.log_format}
        args.settings = config.load(flags, config_file=args.config)
        args.data_dir = args.settings.data_dir
        logs.configure(args.settings.log_level, args.settings.log_format,
                       secrets=logs.settings_secrets(args.settings))
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"gymforge: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

"""`gymforge teacher`: the offline teacher (a rule-based stand-in, not a model) in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import get_args

from gymforge.app import mirror_knowledge, with_settings
from gymforge.commands import serve_until_signalled
from gymforge.config import Settings
from gymforge.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teacher", help="run the offline teacher (rule-based, not a model) in the foreground")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default: GYMFORGE_TEACHER_PORT (8765)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    p.add_argument("--jitter", type=float, default=0.0, help="random extra latency, up to this many seconds")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of calls answered 429 or 500")
    p.add_argument("--hang-rate", type=float, default=0.0, help="share of calls that hang (timeouts)")
    p.add_argument("--defect-rate", type=float, default=None, help="share of first drafts with a planted bug")
    p.add_argument("--solve-format-error-rate", type=float, default=0.0,
                   help="share of solver replies with no command block, or two (format-error tests)")
    p.add_argument("--solve-script", type=Path, default=None, metavar="FILE",
                   help="JSON list of strings: the solver replies, one per assistant turn (the last repeats)")
    p.add_argument("--style", choices=get_args(Settings.model_fields["teacher_style"].annotation), default=None,
                   help="dress the replies as some real model would: <think> drafts, markdown headers, tool "
                        "arguments as objects, diffs, cut-off replies... (default: GYMFORGE_TEACHER_STYLE, plain)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=with_settings(cmd_teacher))


def cmd_teacher(args: argparse.Namespace, s: Settings) -> int:
    from teacher.policy import TeacherConfig
    from teacher.server import Faults, TeacherServer

    for name in ("error_rate", "hang_rate", "defect_rate", "solve_format_error_rate"):
        v = getattr(args, name)
        if v is not None and not 0.0 <= v <= 1.0:
            raise UserError(f"--{name.replace('_', '-')} must be between 0 and 1")
    faults = Faults(latency_s=args.latency, latency_jitter_s=args.jitter, error_rate=args.error_rate,
                    hang_rate=args.hang_rate, seed=args.seed)
    config = TeacherConfig(defect_rate=s.teacher_defect_rate if args.defect_rate is None else args.defect_rate,
                           solve_format_error_rate=args.solve_format_error_rate,
                           solve_script=read_script(args.solve_script) if args.solve_script else None,
                           knowledge=tuple(mirror_knowledge(s)),
                           style=s.teacher_style if args.style is None else args.style)
    port = s.teacher_port if args.port is None else args.port

    async def main() -> None:
        server = TeacherServer(args.host, port, config, faults)
        try:
            await server.start()
        except OSError as exc:
            raise UserError(f"cannot listen on {args.host}:{port}: {exc.strerror}") from None
        styled = "" if config.style == "plain" else f", replies in the {config.style!r} style"
        print(f"offline teacher (rule-based stand-in, not a model{styled}) on {server.base_url}; Ctrl-C to stop",
              file=sys.stderr)
        await serve_until_signalled(server)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def read_script(path: Path) -> tuple[str, ...]:
    """--solve-script: a JSON list of at least one string."""
    try:
        script = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read --solve-script {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"--solve-script {path} is not JSON: {exc}") from None
    if not isinstance(script, list) or not script or not all(isinstance(x, str) for x in script):
        raise UserError(f"--solve-script {path} must hold a non-empty JSON list of strings")
    return tuple(script)

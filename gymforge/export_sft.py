"""`gymforge export sft --out DIR`: trajectories as chat-format JSONL for supervised fine-tuning.

    DIR/train.jsonl      one line per trajectory: {"messages": [...]} (+ "tools" in tool-call mode), and with
                         --format trl (the default) its "metadata"; messages are system, user (the task),
                         then assistant / observation turns, ending with the final assistant reply (the
                         submit, for a submitted episode). A tool call's `arguments` is an object with
                         --format trl (chat templates serialise it themselves: a JSON string would be
                         encoded twice) and a JSON string with --format openai (what OpenAI's format wants)
    DIR/metadata.jsonl   --format openai only: the metadata, line-aligned with train.jsonl, which then holds
                         nothing but what OpenAI's fine-tuning format allows
    DIR/manifest.json    counts, skipped trajectories, filters, format, the token estimator, the longest
                         example (estimated tokens, tool specs included) and the `max_length` to train with
                         (TRL's default of 1024 truncates longer examples silently); the command says it too

Rows are streamed from the store (one trajectory in memory at a time), filtered and ordered in SQL.
Conversations longer than --max-tokens (ESTIMATED, domain.tokens) keep the system prompt, the task and the
final turns from the last submit on, dropping whole turns from the middle, oldest first, with a note saying
how many (gymforge/sft_format.py); those whose system prompt, task and final turns alone do not fit are
skipped and counted (too_long). The shared pieces (filters, the example stream, the manifest) serve
`export traj` and `export hf` as well.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.trajectory import Trajectory
from gymforge import sft_format
from gymforge.app import with_settings
from gymforge.config import Settings
from gymforge.errors import UserError
from gymforge.mlgym import check_out_dir, export_subparsers
from store import queries
from store.db import Store, StoreError

STATUSES: dict[str, tuple[str, ...] | None] = {"accepted": ("accepted",), "all": None}
DEFAULT_MAX_TOKENS = 32_000
FORMATS = ("trl", "openai")
ARGUMENTS = {"trl": "object", "openai": "string"}  # a tool call's arguments per format (sft_format.tool_call)
REASONING = sft_format.REASONING
SKIPPED_IDS_KEPT = 1000  # the manifest lists at most this many skipped trajectories by name


def register(sub: argparse._SubParsersAction) -> None:
    p = export_subparsers(sub).add_parser(
        "sft", help="trajectories as chat JSONL for supervised fine-tuning (TRL or OpenAI format)",
        description="Write the trajectories as one chat conversation per line (DIR/train.jsonl). One longer "
                    "than --max-tokens estimated tokens keeps the system prompt, the task and the final turns "
                    "from the last submit on, and drops whole turns from the middle, oldest first.")
    add_filter_args(p, order=True, max_tokens=True, reasoning=True)
    p.add_argument("--format", choices=FORMATS, default="trl", dest="fmt",
                   help="trl: messages and metadata per line (default); openai: messages only, "
                        "metadata in DIR/metadata.jsonl")
    p.set_defaults(func=with_settings(cmd_export_sft))


def add_filter_args(p: argparse.ArgumentParser, *, order: bool, max_tokens: bool, reasoning: bool = False) -> None:
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--status", choices=tuple(STATUSES), default="accepted",
                   help="accepted trajectories only (default) or all of them")
    p.add_argument("--task", action="append", dest="task_ids", default=None, metavar="TASK_ID",
                   help="export only this task's trajectories (repeatable)")
    if order:
        p.add_argument("--order", choices=tuple(queries.TRAJECTORY_ORDERS), default="curriculum",
                       help="curriculum: the task's solve rate descending, easy first (default); time: as recorded")
    if max_tokens:
        p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS,
                       help=f"estimated tokens per conversation (default {DEFAULT_MAX_TOKENS}); middle turns "
                            "are dropped to fit")
    if reasoning:
        p.add_argument("--reasoning", choices=REASONING, default="drop",
                       help="drop: the model's thinking stays out of the examples (default); keep: each assistant "
                            "message that had some carries it as `reasoning_content` (Qwen3-style chat templates "
                            "render it)")
    p.add_argument("--force", action="store_true", help="write into a non-empty DIR, replacing our files")


# --- filters and the example stream (shared with export traj / hf) -------------------------------


@dataclass(frozen=True)
class Filters:
    status: str = "accepted"
    task_ids: tuple[str, ...] | None = None
    order: str = "time"
    max_tokens: int = DEFAULT_MAX_TOKENS
    reasoning: str = "drop"  # drop | keep: the assistant messages' reasoning_content

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Filters:
        max_tokens = getattr(args, "max_tokens", DEFAULT_MAX_TOKENS)
        if max_tokens < 1:
            raise UserError(f"--max-tokens must be at least 1, not {max_tokens}")
        return cls(status=args.status, task_ids=tuple(dict.fromkeys(args.task_ids)) if args.task_ids else None,
                   order=getattr(args, "order", "time"), max_tokens=max_tokens,
                   reasoning=getattr(args, "reasoning", "drop"))

    def query(self) -> dict[str, Any]:
        return {"statuses": STATUSES[self.status], "task_ids": list(self.task_ids) if self.task_ids else None}

    def describe(self) -> dict[str, Any]:
        return {"status": self.status, "tasks": list(self.task_ids) if self.task_ids else None,
                "order": self.order, "max_tokens": self.max_tokens, "reasoning": self.reasoning}


@dataclass
class Skipped:
    counts: Counter[str] = field(default_factory=Counter)
    ids: list[str] = field(default_factory=list)

    def add(self, row: dict[str, Any], reason: str) -> None:
        self.counts[reason] += 1
        if len(self.ids) < SKIPPED_IDS_KEPT:
            self.ids.append(f"{row['task_id']}__{row['attempt']}: {reason}")

    def describe(self) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in sorted(self.counts.items()))


@dataclass
class Example:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    metadata: dict[str, Any]
    dropped_turns: int = 0  # turns the truncation left out

    @property
    def length(self) -> int:
        """Estimated tokens as a trainer sees the example: the conversation and its tool specs."""
        return sft_format.example_tokens(self.metadata["tokens"], self.tools)


def lengths(longest: int) -> dict[str, Any]:
    """The manifest's length keys: the longest example and the `max_length` that trains on all of it."""
    return {"longest_example_tokens": longest, "max_length": sft_format.max_length_for(longest),
            "max_length_rule": sft_format.MAX_LENGTH_RULE}


def max_length_note(longest: int) -> str:
    """The command's line about it: TRL's default max_length (1024) would cut longer examples silently."""
    return (f"longest example ~{longest} estimated tokens: train with max_length={sft_format.max_length_for(longest)}"
            f" (TRL's default 1024 truncates)")


async def open_store(s: Settings, f: Filters) -> Store:
    """The store, read-only, once the filters are known to match some trajectory; else a UserError."""
    try:
        store = await Store.open(s.db_path, readonly=True)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    try:
        if f.task_ids and (unknown := await queries.unknown_task_ids(store, list(f.task_ids))):
            raise UserError(f"unknown task {', '.join(unknown)}: not in the store at {s.db_path}")
        if not await queries.count_trajectories(store, **f.query()):
            which = "" if f.status == "all" else f" {f.status}"
            among = f" for {', '.join(f.task_ids)}" if f.task_ids else ""
            raise UserError(f"no{which} trajectories{among} in the store at {s.db_path}: "
                            "run the pipeline (`gymforge run`) first" + ("" if f.status == "all" else
                                                                         " or pass --status all"))
    except BaseException:
        await store.close()
        raise
    return store


async def trajectories(store: Store, f: Filters, skipped: Skipped
                       ) -> AsyncIterator[tuple[dict[str, Any], Trajectory]]:
    """(row, trajectory) per stored trajectory matching `f`, in its order; unreadable ones skipped. The row
    carries its task's `dataset_name` (None when the store has no bundle for the task)."""
    names = await dataset_names(store)
    async for row in queries.stream_trajectories(store, order=f.order, **f.query()):
        row["dataset_name"] = names.get(row["task_id"])
        try:
            traj = sft_format.parse(row["traj"])
        except sft_format.Unusable as exc:
            skipped.add(row, exc.reason)
            continue
        yield row, traj


async def dataset_names(store: Store) -> dict[str, str]:
    """Each task's dataset, from the bundle the sink stored with it."""
    rows = await store.rows("SELECT task_id, json_extract(bundle, '$.dataset_name') AS name FROM tasks"
                            " WHERE json_valid(bundle)")
    return {r["task_id"]: str(r["name"]) for r in rows if r["name"] is not None}


def example_of(row: dict[str, Any], traj: Trajectory, max_tokens: int, skipped: Skipped,
               reasoning: str = "drop", arguments: str = "string") -> Example | None:
    try:
        conv = sft_format.conversation(traj, max_tokens, reasoning=reasoning, arguments=arguments)
    except sft_format.Unusable as exc:
        skipped.add(row, exc.reason)
        return None
    return Example(conv.messages, conv.tools, sft_format.metadata(row, traj, conv), conv.dropped_turns)


async def examples(store: Store, f: Filters, skipped: Skipped, arguments: str = "string"
                   ) -> AsyncIterator[Example]:
    """One training example per usable trajectory, streamed."""
    async for row, traj in trajectories(store, f, skipped):
        if (ex := example_of(row, traj, f.max_tokens, skipped, f.reasoning, arguments)) is not None:
            yield ex


def manifest(kind: str, f: Filters, counts: dict[str, Any], skipped: Skipped, **extra: Any) -> dict[str, Any]:
    return {"export": kind, "created": datetime.now(UTC).isoformat(timespec="seconds"), **extra, **counts,
            "skipped": dict(sorted(skipped.counts.items())), "skipped_ids": skipped.ids,
            "filters": f.describe(), "token_estimator": sft_format.TOKEN_ESTIMATOR}


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def make_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to --out {out}: {exc.strerror}") from None


# --- the sft command ---------------------------------------------------------------------------


@dataclass
class SftSummary:
    written: int = 0
    truncated: int = 0
    dropped_turns: int = 0
    tokens: int = 0
    longest: int = 0  # estimated tokens of the longest example (Example.length)
    skipped: Skipped = field(default_factory=Skipped)


def cmd_export_sft(args: argparse.Namespace, s: Settings) -> int:
    check_out_dir(args.out, force=args.force)
    f = Filters.from_args(args)
    summary = asyncio.run(export_sft(s, args.out, f, fmt=args.fmt))
    skipped = f"; skipped {sum(summary.skipped.counts.values())} ({summary.skipped.describe()})" \
        if summary.skipped.counts else ""
    print(f"exported {summary.written} trajectory(ies) to {args.out / 'train.jsonl'} ({args.fmt}; "
          f"{summary.truncated} truncated to {f.max_tokens} estimated tokens, {summary.dropped_turns} "
          f"middle turn(s) dropped){skipped}" + (f"; {max_length_note(summary.longest)}" if summary.written else ""))
    if not summary.written:
        print("gymforge: no trajectory gave a training example: raise --max-tokens or check the skipped list "
              f"in {args.out / 'manifest.json'}", file=sys.stderr)
        return 1
    return 0


def sft_line(ex: Example, fmt: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The train.jsonl object and, for openai, the separate metadata object."""
    line: dict[str, Any] = {"messages": ex.messages}
    if ex.tools:
        line["tools"] = ex.tools
    if fmt == "trl":
        line["metadata"] = ex.metadata
        return line, None
    return line, ex.metadata


async def export_sft(s: Settings, out: Path, f: Filters, *, fmt: str = "trl") -> SftSummary:
    store = await open_store(s, f)
    summary = SftSummary()
    try:
        make_out_dir(out)
        names = ["train.jsonl"] + (["metadata.jsonl"] if fmt == "openai" else [])
        tmps = [out / f".{n}.tmp" for n in names]
        try:
            with contextlib.ExitStack() as files:
                train = files.enter_context(tmps[0].open("w"))
                meta = files.enter_context(tmps[1].open("w")) if fmt == "openai" else None
                async for ex in examples(store, f, summary.skipped, ARGUMENTS[fmt]):
                    line, extra = sft_line(ex, fmt)
                    train.write(json.dumps(line, ensure_ascii=False) + "\n")
                    if meta is not None:
                        meta.write(json.dumps(extra, ensure_ascii=False) + "\n")
                    summary.written += 1
                    summary.truncated += ex.metadata["truncated"]
                    summary.dropped_turns += ex.dropped_turns
                    summary.tokens += ex.metadata["tokens"]
                    summary.longest = max(summary.longest, ex.length)
            for tmp, name in zip(tmps, names, strict=True):
                os.replace(tmp, out / name)
            if fmt != "openai":  # an earlier --format openai export's metadata would no longer line up
                (out / "metadata.jsonl").unlink(missing_ok=True)
        finally:
            for tmp in tmps:
                tmp.unlink(missing_ok=True)
        counts = {"trajectories": summary.written, "truncated": summary.truncated,
                  "dropped_turns": summary.dropped_turns, "estimated_tokens": summary.tokens, **lengths(summary.longest)}
        write_json(out / "manifest.json", manifest("sft", f, counts, summary.skipped, format=fmt, files=names))
        return summary
    finally:
        await store.close()

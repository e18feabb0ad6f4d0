"""`gymforge export hf --out DIR [--push REPO]`: trajectories as a Hugging Face `datasets.DatasetDict`.

DIR is what `DatasetDict.save_to_disk` writes (load it back with `datasets.load_from_disk(DIR)`), plus
DIR/manifest.json. Two splits, `train` and `test`: a dataset's trajectories all go to one split, chosen
by a hash of the dataset's name (about --test-share of the datasets in `test`), so no dataset is in both
and a test task never shares its data with a training task (a trajectory whose task is not in the store
has no dataset name: its task id stands in). Columns: `messages` (the chat conversation, as `export sft
--format trl` builds it: a tool call's `arguments` is an object, `{"command": ...}`), `tools` (the tool
specs as JSON text in tool-call mode, which TRL decodes, else null) and the metadata flat (task_id,
dataset_name, attempt, score, ...). The manifest and the command give the longest example and the
`max_length` to train with.

Each split is built with `Dataset.from_generator` over the streamed store rows, so memory stays bounded.
`--push REPO` then uploads the saved dataset with `push_to_hub` to the configured Hub endpoint
(settings `hf_endpoint` / HF_ENDPOINT) with the token from settings `hf_token` / HF_TOKEN.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.settings import HUB
from gymforge.app import with_settings
from gymforge.config import Settings
from gymforge.errors import UserError
from gymforge.export_sft import (
    Filters,
    Skipped,
    add_filter_args,
    example_of,
    lengths,
    make_out_dir,
    manifest,
    max_length_note,
    open_store,
    trajectories,
    write_json,
)
from gymforge.mlgym import check_out_dir, export_subparsers, one_line
from store.db import Store

SPLITS = ("train", "test")
DEFAULT_TEST_SHARE = 0.1
WRITER_BATCH = 64  # rows datasets holds before writing them out: conversations of up to --max-tokens each


def register(sub: argparse._SubParsersAction) -> None:
    p = export_subparsers(sub).add_parser(
        "hf", help="trajectories as a Hugging Face DatasetDict (train/test by dataset), optionally pushed",
        description="Save the trajectories' chat conversations as a datasets.DatasetDict in DIR.")
    add_filter_args(p, order=True, max_tokens=True)
    p.add_argument("--test-share", type=float, default=DEFAULT_TEST_SHARE,
                   help=f"share of the datasets whose tasks' trajectories go to the test split (default {DEFAULT_TEST_SHARE})")
    p.add_argument("--push", metavar="REPO", default=None,
                   help="also push the dataset to this Hub repo (needs HF_TOKEN or the hf_token setting)")
    p.set_defaults(func=with_settings(cmd_export_hf))


def split_of(key: str, test_share: float) -> str:
    """`test` for about `test_share` of the keys (dataset names), stably (a hash, not a random draw)."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "test" if h < test_share else "train"


def split_key(row: dict[str, Any]) -> str:
    """What decides a trajectory's split: its task's dataset, else (no such task in the store) the task."""
    return row.get("dataset_name") or f"task:{row['task_id']}"


def features() -> Any:
    from datasets import Features, Value

    s = Value("string")
    call = {"id": s, "type": s, "function": {"name": s, "arguments": {"command": s}}}
    message = {"role": s, "content": s, "tool_call_id": s, "tool_calls": [call]}
    f64 = Value("float64")
    return Features({
        "messages": [message], "tools": s, "task_id": s, "dataset_name": s, "attempt": Value("int64"), "status": s,
        "score": f64, "baseline_score": f64, "gain": f64, "metric": s, "direction": s, "exit_status": s,
        "solve_rate": f64, "tokens": Value("int64"), "truncated": Value("bool"),
    })


@dataclass
class SplitSkipped(Skipped):
    """Counts only the skipped rows of one split (each split's generator reads every row)."""

    split: str = "train"
    test_share: float = DEFAULT_TEST_SHARE

    def add(self, row: dict[str, Any], reason: str) -> None:
        if split_of(split_key(row), self.test_share) == self.split:
            super().add(row, reason)


@dataclass
class SplitRun:
    skipped: SplitSkipped
    rows: int = 0
    tasks: set[str] = field(default_factory=set)
    datasets: set[str] = field(default_factory=set)  # split keys (dataset names)
    longest: int = 0  # estimated tokens of the longest example


_RUNS: dict[str, SplitRun] = {}  # "<run id>/<split>" -> what that split's generator did (same process)


def split_rows(spec: str) -> Iterator[dict[str, Any]]:
    """The generator behind one split: its examples from the store, a row at a time. `spec` is JSON text
    so that `datasets` neither shards it nor fails to hash it."""
    o = json.loads(spec)
    f = Filters(status=o["status"], task_ids=tuple(o["tasks"]) if o["tasks"] else None, order=o["order"],
                max_tokens=o["max_tokens"])
    run = _RUNS[o["run"]]
    with asyncio.Runner() as runner:
        store = runner.run(Store.open(Path(o["db"]), readonly=True))
        stream = trajectories(store, f, run.skipped)
        try:
            while True:
                try:
                    row, traj = runner.run(anext(stream))
                except StopAsyncIteration:
                    break
                if split_of(split_key(row), o["test_share"]) != o["split"]:
                    continue
                if (ex := example_of(row, traj, f.max_tokens, run.skipped, arguments="object")) is not None:
                    run.rows += 1
                    run.tasks.add(row["task_id"])
                    run.datasets.add(split_key(row))
                    run.longest = max(run.longest, ex.length)
                    yield {"messages": ex.messages, "tools": json.dumps(ex.tools) if ex.tools else None,
                           **ex.metadata}
        finally:
            runner.run(stream.aclose())
            runner.run(store.close())


def build_split(spec: dict[str, Any], cache: Path) -> Any:
    import datasets

    key = f"{spec['run']}/{spec['split']}"
    _RUNS[key] = run = SplitRun(SplitSkipped(split=spec["split"], test_share=spec["test_share"]))
    try:
        return datasets.Dataset.from_generator(split_rows, features=features(), cache_dir=str(cache),
                                               gen_kwargs={"spec": json.dumps({**spec, "run": key})},
                                               writer_batch_size=WRITER_BATCH)
    except ValueError:
        if run.rows:
            raise
        return datasets.Dataset.from_dict({name: [] for name in features()}, features=features())


# --- the command --------------------------------------------------------------------------------


def cmd_export_hf(args: argparse.Namespace, s: Settings) -> int:
    check_out_dir(args.out, force=args.force)
    f = Filters.from_args(args)
    if not 0.0 <= args.test_share < 1.0:
        raise UserError(f"--test-share must be in [0, 1), not {args.test_share}")
    token = s.secret("hf_token") if args.push else None
    if args.push and not token:
        raise UserError("--push needs a Hugging Face token: set HF_TOKEN (or hf_token in the config)")
    asyncio.run(check_store(s, f))
    runs = export_hf(s, args.out, f, args.test_share)
    rows = {name: run.rows for name, run in runs.items()}
    skipped = sum(sum(r.skipped.counts.values()) for r in runs.values())
    longest = max(run.longest for run in runs.values())
    print(f"saved a DatasetDict to {args.out}: train {rows['train']}, test {rows['test']} trajectory(ies)"
          + (f"; skipped {skipped}" if skipped else "") + (f"; {max_length_note(longest)}" if longest else ""))
    if not sum(rows.values()):
        print(f"gymforge: no trajectory gave a training example (see {args.out / 'manifest.json'})"
              + ("; nothing pushed" if args.push else ""), file=sys.stderr)
        return 1
    if args.push:
        push(args.out, args.push, token or "", s.hub.endpoint or HUB)
        manifest_path = args.out / "manifest.json"
        write_json(manifest_path, {**json.loads(manifest_path.read_text()), "pushed_to": args.push})
        print(f"pushed to {args.push} at {s.hub.endpoint or HUB}")
    return 0


async def check_store(s: Settings, f: Filters) -> None:
    store = await open_store(s, f)  # raises UserError on a missing store, unknown tasks, no match
    await store.close()


def export_hf(s: Settings, out: Path, f: Filters, test_share: float) -> dict[str, SplitRun]:
    import datasets

    datasets.disable_progress_bars()
    make_out_dir(out)
    run_id = uuid.uuid4().hex
    base = {"db": str(s.db_path), "status": f.status, "tasks": list(f.task_ids or ()), "order": f.order,
            "max_tokens": f.max_tokens, "test_share": test_share, "run": run_id}
    try:
        with tempfile.TemporaryDirectory(prefix=".hf-cache-", dir=out) as cache:
            dd = datasets.DatasetDict({name: build_split({**base, "split": name}, Path(cache)) for name in SPLITS})
            # datasets writes no shard at all for an empty split, and then cannot load it: ask for one
            dd.save_to_disk(str(out), num_shards={name: 1 for name, d in dd.items() if not d.num_rows} or None)
            del dd
        runs = {name: _RUNS[f"{run_id}/{name}"] for name in SPLITS}
    finally:
        for name in SPLITS:
            _RUNS.pop(f"{run_id}/{name}", None)
    skipped = Skipped()
    for r in runs.values():
        skipped.counts.update(r.skipped.counts)
        skipped.ids += r.skipped.ids
    counts = {"splits": {name: {"trajectories": r.rows, "tasks": len(r.tasks), "datasets": len(r.datasets)}
                         for name, r in runs.items()}, **lengths(max(r.longest for r in runs.values()))}
    write_json(out / "manifest.json", manifest("hf", f, counts, skipped, format="datasets.DatasetDict",
                                               test_share=test_share, split_by="sha256(dataset_name)",
                                               pushed_to=None))
    return runs


@contextlib.contextmanager
def hub_endpoint(endpoint: str) -> Iterator[None]:
    """datasets' push_to_hub talks to datasets.config.HF_ENDPOINT: point it at the configured one."""
    import datasets.config

    old = datasets.config.HF_ENDPOINT
    datasets.config.HF_ENDPOINT = endpoint.rstrip("/")
    try:
        yield
    finally:
        datasets.config.HF_ENDPOINT = old


def push(out: Path, repo: str, token: str, endpoint: str) -> None:
    """Upload the saved DatasetDict (what is on disk is what gets pushed)."""
    import datasets

    dd = datasets.load_from_disk(str(out))
    try:
        with hub_endpoint(endpoint):
            dd.push_to_hub(repo, token=token)
    except Exception as exc:  # HTTP, network and Hub errors alike: one line, the export itself is saved
        raise UserError(f"push to {repo} at {endpoint} failed ({out} is saved): "
                        f"{one_line(f'{type(exc).__name__}: {exc}')}") from None

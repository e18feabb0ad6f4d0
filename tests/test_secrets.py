"""Secrets never leak: the log redaction on its own, then the real pipeline run with planted secrets and
every artifact it leaves (logs, SQLite, JetStream messages, the object store, exports, the data dir)
searched for them."""

from __future__ import annotations

import io
import json
import logging
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from bus import Bus, BusSettings, EmbeddedNats
from bus.server import ServerSecurity, free_port
from domain.payloads import PAYLOADS
from gymforge import config, logs
from teacher.policy import TeacherConfig
from teacher.server import TeacherServer
from tests.helpers.cli import gymforge


def planted() -> dict[str, str]:
    """Fresh secrets shaped like the real ones; each one is a distinct random string."""
    return {
        "OPENAI_API_KEY": "sk-" + secrets.token_hex(20),
        "GYMFORGE_SOLVER_API_KEY": "sk-proj-" + secrets.token_hex(20),
        "HF_TOKEN": "hf_" + secrets.token_hex(17),
        "GYMFORGE_NATS_PASSWORD": secrets.token_urlsafe(18),
    }


# The solver's episode, scripted: it looks for secrets from inside the sandbox, then submits.
PROBE = ("env | sort; echo ===; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | sort -u | head -300; "
         "echo ===; ls -a ~ /work 2>/dev/null")
SOLVE_SCRIPT = (f"THOUGHT: first see what the environment holds.\n\n```bash\n{PROBE}\n```\n",
                "THOUGHT: done.\n\n```bash\nsubmit\n```\n")


# --- the redaction itself -------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Where both structlog and the standard logging module write, as in the CLI; restored afterwards."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logging.getLogger().addHandler(handler)
    yield out
    logging.getLogger().removeHandler(handler)
    structlog.reset_defaults()
    for handler in logging.getLogger().handlers:
        for f in [f for f in handler.filters if isinstance(f, logs.RedactingFilter)]:
            handler.removeFilter(f)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_log_lines_mask_secrets_in_every_field(fmt: str, monkeypatch: pytest.MonkeyPatch,
                                               log_stream: io.StringIO) -> None:
    env = planted()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from_settings = "toml-only-" + secrets.token_hex(8)  # a secret no env var holds, not key-shaped
    settings = config.load({"solver_api_key": from_settings}, environ={})
    unplanted_key = "sk-" + secrets.token_hex(24)  # known nowhere: caught by its shape alone
    url_password = secrets.token_urlsafe(12)  # known nowhere either: a password in a URL
    out = log_stream
    logs.configure("debug", fmt, stream=out, secrets=logs.settings_secrets(settings))
    log = structlog.get_logger("test")

    log.info("calling endpoint", api_key=env["GYMFORGE_SOLVER_API_KEY"], headers={"Authorization": f"Bearer {from_settings}"},
             nested=[{"token": env["HF_TOKEN"].encode()}, (env["GYMFORGE_NATS_PASSWORD"],)],
             url=f"nats://gf:{env['GYMFORGE_NATS_PASSWORD']}@127.0.0.1:4222", stray=f"found {unplanted_key} in a file",
             endpoint=f"https://proxy:{url_password}@llm.internal/v1")

    def call(api_key: str) -> None:  # the key sits in the frame's locals as well as in the message
        raise RuntimeError(f"401 for key {api_key} and {env['OPENAI_API_KEY']}")

    try:
        call(from_settings)
    except RuntimeError:
        log.exception("request failed")
    logging.getLogger("aiohttp.client").warning("retrying with %s", env["HF_TOKEN"])

    text = out.getvalue()
    for secret in [*env.values(), from_settings, unplanted_key, url_password]:
        assert secret not in text, (secret, text)
    assert text.count(logs.MASK) >= 10, text
    assert "calling endpoint" in text and "request failed" in text and "RuntimeError" in text and "retrying" in text
    if fmt == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert lines[0]["headers"] == {"Authorization": f"Bearer {logs.MASK}"} and lines[0]["api_key"] == logs.MASK
        assert lines[0]["url"] == f"nats://gf:{logs.MASK}@127.0.0.1:4222"
        assert lines[0]["endpoint"] == f"https://proxy:{logs.MASK}@llm.internal/v1"


def test_redactor_leaves_ordinary_text_alone() -> None:
    r = logs.Redactor(["hunter2-secret"])
    text = "task sk-learn baseline, hf_hub 0.2, Bearer of good news? accuracy 0.91"
    assert r.text(text) == text
    assert r.text("x hunter2-secret y") == f"x {logs.MASK} y"
    assert logs.Redactor(["abc"]).text("abc") == "abc"  # too short to be a secret worth masking


# --- the pipeline ---------------------------------------------------------------------------------


def find(secrets_: dict[str, str], data: bytes, where: str, leaks: list[str]) -> None:
    for name, value in secrets_.items():
        if value.encode() in data:
            leaks.append(f"{name} in {where}")


def scan_tree(root: Path, secrets_: dict[str, str], leaks: list[str], skip: tuple[Path, ...] = ()) -> int:
    n = 0
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and path not in skip:
            find(secrets_, path.read_bytes(), str(path.relative_to(root)), leaks)
            n += 1
    return n


def scan_sqlite(db: Path, secrets_: dict[str, str], leaks: list[str]) -> dict[str, int]:
    rows: dict[str, int] = {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            rows[table] = 0
            for row in con.execute(f'SELECT * FROM "{table}"'):
                rows[table] += 1
                for cell in row:
                    data = cell if isinstance(cell, bytes) else str(cell).encode()
                    find(secrets_, data, f"sqlite table {table}", leaks)
    finally:
        con.close()
    return rows


async def scan_jetstream(bus: Bus, secrets_: dict[str, str], leaks: list[str]) -> dict[str, int]:
    """Every message of every stream (the events, the KV buckets, the object store's chunks)."""
    seen: dict[str, int] = {}
    for info in await bus.js.streams_info():
        name, state = info.config.name, info.state
        seen[name] = 0
        for seq in range(state.first_seq, state.last_seq + 1):
            try:
                msg = await bus.js.get_msg(name, seq)
            except Exception:  # deleted (e.g. a KV value replaced)
                continue
            seen[name] += 1
            find(secrets_, (msg.data or b"") + json.dumps(msg.headers or {}).encode() + (msg.subject or "").encode(),
                 f"stream {name} message {seq}", leaks)
    return seen


async def scan_object_store(bus: Bus, secrets_: dict[str, str], leaks: list[str]) -> int:
    store = await bus.artifacts()
    objects = await store.list()
    for obj in objects:
        result = await store.get(obj.name)
        find(secrets_, (result.data or b"") + obj.name.encode(), f"object {obj.name}", leaks)
    return len(objects)


@pytest.fixture
async def teacher() -> AsyncIterator[TeacherServer]:
    """The offline teacher, its solve replies scripted; `gymforge run` uses it as it answers on the port."""
    async with TeacherServer(config=TeacherConfig(defect_rate=0.0, solve_script=SOLVE_SCRIPT)) as server:
        yield server


async def test_a_pipeline_run_leaks_no_planted_secret(tmp_path: Path, data_dir: Path, teacher: TeacherServer) -> None:
    plant = planted()
    proxy_password = secrets.token_urlsafe(12)
    nats_password = plant["GYMFORGE_NATS_PASSWORD"]
    env = {
        **plant, "GYMFORGE_NATS_USER": "gf",
        "GYMFORGE_TEACHER_PORT": str(teacher.port),
        # the solver talks to the offline teacher as if it were a paid endpoint behind a proxy, with a key
        "GYMFORGE_SOLVER_BASE_URL": f"http://solver:{proxy_password}@127.0.0.1:{teacher.port}/v1",
        # the Hub is never reached with the planted token: a port where nothing listens
        "GYMFORGE_HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "GYMFORGE_HF_VIEWER_ENDPOINT": f"http://127.0.0.1:{free_port()}",
        "GYMFORGE_LOG_FORMAT": "json", "GYMFORGE_LOG_LEVEL": "debug",
    }
    plant["password in the solver base URL"] = proxy_password
    store = tmp_path / "nats-store"
    security = ServerSecurity(user="gf", password=nats_password)
    async with EmbeddedNats(store, port=0, security=security) as srv:
        run = await gymforge("run", "--topics", "2", "--attempts", "1", "--idle-seconds", "4", url=srv.url,
                             data_dir=data_dir, env=env, timeout=480)
        assert run.code == 0, run.err[-3000:]
        exports = tmp_path / "exports"
        outputs = [run.out, run.err]
        for kind, extra in (("sft", ["--status", "all"]), ("traj", ["--status", "all"]), ("mlgym", [])):
            r = await gymforge("export", kind, "--out", str(exports / kind), *extra, url=srv.url, data_dir=data_dir,
                               env=env)
            assert r.code == 0, r.err
            outputs += [r.out, r.err]
        for args in (("status", "--json"), ("tail", "--json", "--no-follow"), ("dlq", "list", "--all", "--json")):
            r = await gymforge(*args, url=srv.url, data_dir=data_dir, env=env)
            assert r.code == 0, r.err
            outputs += [r.out, r.err]

        leaks: list[str] = []
        bus = await Bus.connect(BusSettings(url=srv.url, user="gf", password=nats_password), types=PAYLOADS, setup=False)
        try:
            streams = await scan_jetstream(bus, plant, leaks)
            objects = await scan_object_store(bus, plant, leaks)
        finally:
            await bus.close()
    # the run really went through the planted paths: JSON logs, the solver's keyed endpoint, the store
    log_lines = [json.loads(line) for line in run.err.splitlines() if line.startswith("{")]
    assert len(log_lines) >= 10, run.err[-2000:]
    tables = scan_sqlite(data_dir / "gymforge.db", plant, leaks)
    assert tables["trajectories"] >= 1 and tables["ledger"] >= 10, tables
    usage = sqlite3.connect(data_dir / "gymforge.db").execute(
        "SELECT COUNT(*) FROM usage WHERE role = 'solver'").fetchone()[0]
    assert usage >= 1, "the solver never called its endpoint"
    assert streams["GYMFORGE"] >= 10 and objects >= 1, (streams, objects)

    for i, text in enumerate(outputs):
        find(plant, text.encode(), f"command output {i}", leaks)
    assert scan_tree(exports, plant, leaks) >= 3
    # the probe ran in the sandbox and its output is in the trajectories: what it saw was searched too
    traj = "".join(f.read_text() for f in (exports / "traj").glob("*.traj"))
    assert "PATH=" in traj and "===" in traj, traj[:2000]
    assert scan_tree(data_dir, plant, leaks) >= 3
    # the server's own 0600 config holds its password by necessity; its JetStream files must not
    assert scan_tree(store, plant, leaks, skip=(srv.generated_config,)) >= 3
    assert not leaks, leaks

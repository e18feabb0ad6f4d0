"""The runbooks' commands work.

Every fenced ```sh block in runbooks/ whose first line is `# runbook: test` is run: a page's blocks in
order, as one bash script (`set -euo pipefail`), from the checkout, with the venv first on PATH, in a
scratch data dir with free ports put in the variables the runbooks use (GYMFORGE_NATS_URL,
GYMFORGE_DATA_DIR, GYMFORGE_TEACHER_PORT, METRICS_PORT, WEB_PORT, PORT_BASE, BACKUP_DIR, CLUSTER_DIR).
`# runbook: test, needs: nats sink` asks for a nats-server (and a sink) started here first; a ```toml
block whose first line is `# runbook: config` becomes the page's $GYMFORGE_CONFIG. The pages run at
the same time (most of their time is waiting), each checked for its exit status and what it printed.
The deploy files are checked too: `systemd-analyze verify` on the units, nats-server started with the
single-node config, the compose file parsed, and every setting the examples name is a real one.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from bus.server import find_nats_server
from gymforge.config import KEYS

ROOT = Path(__file__).resolve().parents[1]
RUNBOOKS = ROOT / "runbooks"
DEPLOY = RUNBOOKS / "deploy"
VENV_BIN = Path(sys.executable).parent
ROLES = ("proposer", "verifier", "coder", "debugger", "solver", "filter", "sink")
PAGE_TIMEOUT_S = 150.0

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
MARK = re.compile(r"^# runbook: test(?:, needs: (?P<needs>[a-z ]+))?\s*$")


@dataclass
class Page:
    path: Path
    script: list[str] = field(default_factory=list)
    needs: set[str] = field(default_factory=set)
    config: str = ""


def load_page(path: Path) -> Page:
    page = Page(path)
    for lang, body in FENCE.findall(path.read_text()):
        first = body.split("\n", 1)[0].strip()
        if lang == "sh" and (m := MARK.match(first)):
            page.script.append(body)
            page.needs |= set((m["needs"] or "").split())
        elif lang == "toml" and first == "# runbook: config":
            page.config += body
    return page


def runnable_pages() -> dict[str, Page]:
    pages = {str(p.relative_to(RUNBOOKS)): load_page(p) for p in sorted(RUNBOOKS.rglob("*.md"))}
    return {name: page for name, page in pages.items() if page.script}


# --- ports, processes ------------------------------------------------------------------------------

_taken: set[int] = set()


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_range(span: int) -> int:
    """A base port such that base .. base+span are all free (and not handed out before in this run)."""
    for _ in range(500):
        base = random.randrange(20000, 60000 - span)
        ports = range(base, base + span + 1)
        if not _taken.intersection(ports) and all(_free(p) for p in ports):
            _taken.update(ports)
            return base
    raise RuntimeError("no free port range")


def clean_environ() -> dict[str, str]:
    """The test's environment without settings that would point the runbooks elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GYMFORGE_", "OPENAI_", "NATS_")) and k not in {"HF_TOKEN", "HF_ENDPOINT"}}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["GYMFORGE_TEST_RUN"] = "1"
    return env


def sweep(marker: str) -> None:
    """End whatever still runs with `marker` (a scratch dir) in its command line or environment."""
    me = os.getpid()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == me:
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in seen:
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGKILL)


async def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await asyncio.to_thread(urllib.request.urlopen, url, None, 1.0)
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


async def wait_tcp(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise TimeoutError(f"nothing listens on {port} after {timeout:.0f}s")


@dataclass
class Run:
    code: int | None
    out: str
    err: str
    seconds: float
    logs: str = ""

    def explain(self) -> str:
        return (f"exit {self.code} after {self.seconds:.0f}s\n--- stdout\n{self.out[-6000:]}\n"
                f"--- stderr (bash -x)\n{self.err[-6000:]}\n--- logs\n{self.logs[-6000:]}")


async def run_page(page: Page, tmp: Path) -> Run:
    """Start what the page needs, run its blocks as one script, stop everything it left running."""
    data = tmp / "data"
    data.mkdir(parents=True)
    env = clean_environ()
    nats_port = free_range(0)
    env.update({
        "GYMFORGE_NATS_URL": f"nats://127.0.0.1:{nats_port}", "GYMFORGE_DATA_DIR": str(data),
        "GYMFORGE_TEACHER_PORT": str(free_range(0)), "METRICS_PORT": str(free_range(8)),
        "WEB_PORT": str(free_range(0)), "PORT_BASE": str(free_range(23)), "BACKUP_DIR": str(tmp / "backups"),
        "CLUSTER_DIR": str(tmp / "cluster"), "ROLES": "sink", "GYMFORGE_LOG_FORMAT": "json",
    })
    if page.config:
        (tmp / "gymforge.toml").write_text(page.config)
        env["GYMFORGE_CONFIG"] = str(tmp / "gymforge.toml")
    helpers: list[asyncio.subprocess.Process] = []
    started = time.monotonic()
    try:
        try:
            await start_helpers(page, tmp, env, nats_port, helpers)
        except (OSError, TimeoutError) as exc:
            return Run(None, "", f"harness: {exc}", time.monotonic() - started, logs=collect_logs(tmp))
        script = "set -euo pipefail\nPS4='+ ${SECONDS}s '\nset -x\n" + "\n".join(page.script)
        (tmp / "page.sh").write_text(script)
        proc = await asyncio.create_subprocess_exec(
            "bash", str(tmp / "page.sh"), cwd=ROOT, env=env, start_new_session=True,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), PAGE_TIMEOUT_S)
            code: int | None = proc.returncode
        except TimeoutError:
            code, out, err = None, b"", b"timed out"
        await stop_group(proc.pid)
        return Run(code, out.decode(errors="replace"), err.decode(errors="replace"),
                   time.monotonic() - started, logs=collect_logs(tmp))
    finally:
        for helper in reversed(helpers):
            await stop_group(helper.pid)
        sweep(str(tmp))


async def start_helpers(page: Page, tmp: Path, env: dict[str, str], nats_port: int,
                        helpers: list[asyncio.subprocess.Process]) -> None:
    """What `needs:` asks for: a nats-server on GYMFORGE_NATS_URL, a sink on GYMFORGE_DATA_DIR."""
    if "nats" in page.needs:
        with open(tmp / "harness-nats.log", "wb") as log:  # noqa: ASYNC230 - the child writes it
            helpers.append(await asyncio.create_subprocess_exec(
                find_nats_server(), "-js", "-sd", str(tmp / "harness-nats"), "-a", "127.0.0.1",
                "-p", str(nats_port), stdout=log, stderr=log, env=env, start_new_session=True))
        await wait_tcp(nats_port, 20)
    if "sink" in page.needs:
        port = free_range(0)
        with open(tmp / "harness-sink.log", "wb") as log:  # noqa: ASYNC230
            helpers.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gymforge.cli", "agent", "sink", "--metrics-port", f"127.0.0.1:{port}",
                cwd=ROOT, stdout=log, stderr=log, env=env, start_new_session=True))
        await wait_http(f"http://127.0.0.1:{port}/readyz", 60)


async def stop_group(pgid: int, grace: float = 10.0) -> None:
    """SIGTERM a process group (what the runbook left running), then SIGKILL what is still there."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def collect_logs(tmp: Path) -> str:
    parts = []
    for log in sorted(tmp.rglob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-15:]
        parts.append(f"== {log.relative_to(tmp)}\n" + "\n".join(lines))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def page_runs() -> Iterator[dict[str, Run]]:
    """Every runnable page, all at once."""
    pages = runnable_pages()
    base = Path(tempfile.mkdtemp(prefix="gf-runbooks-"))

    async def all_pages() -> dict[str, Run]:
        names = list(pages)
        runs = await asyncio.gather(*(run_page(pages[n], base / n.replace("/", "_").removesuffix(".md"))
                                      for n in names))
        return dict(zip(names, runs, strict=True))

    try:
        yield asyncio.run(all_pages())
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- the pages -----------------------------------------------------------------------------------------


def test_every_operations_page_has_runnable_blocks() -> None:
    pages = runnable_pages()
    expected = {"one-machine.md", "several-machines.md", "dead-letters.md", "budget.md", "schema-changes.md",
                "backup-restore.md", "real-models.md"}
    assert expected <= set(pages), f"pages without `# runbook: test` blocks: {expected - set(pages)}"


def passed(runs: dict[str, Run], name: str) -> Run:
    run = runs[name]
    assert run.code == 0, f"{name}: {run.explain()}"
    return run


def test_one_machine_daemons_watch_and_stop(page_runs: dict[str, Run]) -> None:
    run = passed(page_runs, "one-machine.md")
    assert re.search(r"gf\.topic\.requested\s+2", run.out), run.explain()  # a seed and a given topic
    assert "gymforge_events_handled_total" in run.out, run.explain()
    assert '"funnel": {' in run.out, run.explain()  # the dashboard's /api/summary, read from the store
    assert "sink: metrics on" in run.out, run.explain()


def test_three_node_cluster_carries_the_stream(page_runs: dict[str, Run]) -> None:
    run = passed(page_runs, "several-machines.md")
    assert all(f" gf-nats-{i}" in run.out for i in (1, 2, 3)), run.explain()
    # published through node 1, read through node 3
    assert re.search(r"gf\.topic\.requested\s+1", run.out), run.explain()
    where = re.search(r"GYMFORGE: 1 messages, replicas (\d+), on gf-nats-\d", run.out)
    assert where, run.explain()
    # the page says plainly that gymforge keeps one replica: if that changes, so must the page
    assert where[1] == "1", "stream replicas changed: update several-machines.md section 2"


def test_dead_letter_drill_lists_fixes_and_replays(page_runs: dict[str, Run]) -> None:
    run = passed(page_runs, "dead-letters.md")
    assert "failed 1 deliveries, last error: Transient: model endpoint unreachable" in run.out, run.explain()
    assert "(replayed)" in run.out, run.explain()
    assert "topic.proposed" in run.out, run.explain()  # the replayed request reached the fixed proposer


def test_budget_set_show_and_config(page_runs: dict[str, Run]) -> None:
    run = passed(page_runs, "budget.md")
    assert '{"usd": 50.0, "tokens": null, "from": "settings"}' in run.out, run.explain()
    assert '{"usd": 25.0, "tokens": 5000000}' in run.out, run.explain()
    assert run.out.rstrip().count('{"usd": null, "tokens": null}') == 1, run.explain()
    assert "usage: 0 calls" in run.out, run.explain()
    assert '"my-org/llama-3.3-70b": [0.6, 0.6]' in run.out, run.explain()  # the config file's, through `settings`
    assert re.search(r"^solver_max_cost_usd +2\.0 ", run.out, re.M), run.explain()


def test_real_models_options_preflight_and_a_styled_rehearsal(page_runs: dict[str, Run]) -> None:
    run = passed(page_runs, "real-models.md")
    assert re.search(r'^solver_reasoning_effort +"low" ', run.out, re.M), run.explain()  # the page's config
    assert re.search(r"^solver_extra_body +.*enable_thinking", run.out, re.M), run.explain()
    for role in ("proposer", "coder", "debugger", "solver"):  # check-model's lines, offline then styled
        assert run.out.count(f"{role}: ok: model offline-teacher-rule-based") == 2, run.explain()
    assert re.search(r"^4$", run.out, re.M), run.explain()  # every role saw thinking in the think style


def test_schema_change_rehearsal(page_runs: dict[str, Run]) -> None:
    run = passed(page_runs, "schema-changes.md")
    assert "schema_version 1" in run.out, run.explain()
    assert "unsupported schema_version 2 (this build reads 1)" in run.out, run.explain()
    assert re.search(r"replayed [0-9a-f]{12} to gf\.task\.graded", run.out), run.explain()


def test_backup_and_restore_of_store_and_stream(page_runs: dict[str, Run]) -> None:
    run = passed(page_runs, "backup-restore.md")
    assert re.search(r"^ok \d+ events$", run.out, re.M), run.explain()  # the store backup's integrity check
    assert re.search(r"files in the stream backup: [1-9]", run.out), run.explain()
    topics = re.findall(r"gf\.topic\.requested\s+(\d+)", run.out)
    assert topics and topics[-1] == "2", run.explain()  # the restore took the stream back to the backup
    stream = re.findall(r"^stream: (\d+) events", run.out, re.M)
    store = re.findall(r"^(\d+) events in the store$", run.out, re.M)
    assert stream and store and stream[-1] == store[-1], run.explain()  # the store rebuilt level with it


# --- deploy/ -------------------------------------------------------------------------------------------


def units_in(tmp: Path) -> list[Path]:
    """The units with the install prefix pointed at this venv, so that verify finds the executables."""
    out = []
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        text = unit.read_text().replace("/opt/gymforge/.venv", str(VENV_BIN.parent))
        (tmp / unit.name).write_text(text)
        out.append(tmp / unit.name.replace("@.service", "@solver.service"))
    return out


def test_systemd_units(tmp_path: Path) -> None:
    units = units_in(tmp_path)
    assert {u.name for u in units} == {"gymforge-agent@solver.service", "gymforge-nats.service",
                                       "gymforge-teacher.service"}
    for unit in (DEPLOY / "systemd").glob("*.service"):  # parsed either way
        parser = configparser.RawConfigParser(strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(unit.read_text())
        assert {"Unit", "Service", "Install"} <= set(parser.sections()), unit
        assert parser["Service"]["ExecStart"].startswith("/opt/gymforge/.venv/bin/"), unit
    agent = (DEPLOY / "systemd" / "gymforge-agent@.service").read_text()
    assert "gymforge agent %i $AGENT_ARGS" in agent and "KillMode=mixed" in agent
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the units were only parsed")
    r = subprocess.run(["systemd-analyze", "verify", *[u.name for u in units]], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), r.stdout + r.stderr


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, commented-out ones included (they name settings too)."""
    pairs = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=(.*)$", path.read_text(), re.M)
    return dict(pairs)


def test_example_settings_exist() -> None:
    fields = {f"GYMFORGE_{key.upper()}" for key in KEYS} | {"GYMFORGE_CONFIG"}
    systemd = DEPLOY / "systemd"
    named = {*env_file(systemd / "gymforge.env.example"), *env_file(systemd / "role.env.example")}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for service in compose["services"].values():
        named |= set(service.get("environment") or {})
    unknown = {k for k in named if k.startswith("GYMFORGE_")} - fields
    assert not unknown, f"not settings: {unknown}"
    nats_env = env_file(DEPLOY / "systemd" / "nats.env.example")
    for conf in (DEPLOY / "nats").glob("*.conf"):
        used = set(re.findall(r"\$(NATS_[A-Z0-9_]+)", conf.read_text()))
        assert used <= set(nats_env), f"{conf.name} reads {used - set(nats_env)}, not in nats.env.example"
    assert "${NATS_CONFIG}" in (DEPLOY / "systemd" / "gymforge-nats.service").read_text()


async def test_single_node_config_starts_jetstream(tmp_path: Path) -> None:
    env = {**clean_environ(), "NATS_NAME": "gf-nats", "NATS_HOST": "127.0.0.1",
           "NATS_PORT": str(free_range(0)), "NATS_MONITOR_PORT": str(free_range(0)),
           "NATS_STORE_DIR": str(tmp_path / "store")}
    proc = await asyncio.create_subprocess_exec(
        find_nats_server(), "-c", str(DEPLOY / "nats" / "single.conf"), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    try:
        await wait_http(f"http://127.0.0.1:{env['NATS_MONITOR_PORT']}/healthz?js-enabled-only=true", 20)
        await wait_tcp(int(env["NATS_PORT"]), 5)
        assert (tmp_path / "store" / "jetstream").is_dir()
    finally:
        await stop_group(proc.pid)


def test_compose_file() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"nats", "teacher", "web", *ROLES}
    for role in ROLES:
        assert services[role]["command"] == ["gymforge", "agent", role]
        assert services[role]["environment"]["GYMFORGE_NATS_URL"] == "nats://nats:4222"
        assert services[role]["depends_on"] == {"nats": {"condition": "service_healthy"}}
    assert services["nats"]["command"][0] == "nats-server" and "-js" in services["nats"]["command"]
    assert services["sink"]["volumes"] == services["web"]["volumes"] == ["store:/data"]
    for name in ("debugger", "solver"):
        assert "seccomp=unconfined" in services[name]["security_opt"]
    build = services["sink"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    images = {s["image"] for s in services.values()}
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    images |= set(re.findall(r"^FROM\s+(\S+)", dockerfile, re.M))
    assert images == {"gymforge:local", "python:3.11-slim"}  # default image names only, no registry host


# --- links ----------------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_runbook_links_resolve() -> None:
    broken = []
    for page in RUNBOOKS.rglob("*.md"):
        text = FENCE.sub("", page.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            if not dest.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and dest.suffix == ".md":
                anchors = {slug(h) for h in re.findall(r"^#+\s+(.*)$", FENCE.sub("", dest.read_text()), re.M)}
                if anchor not in anchors:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken

"""The sandbox's limits and isolation, the same suite over every backend available here: bwrap, process
(explicitly allowed; isolation assertions skipped with the reason) and docker (through podman's API
service started here when no engine runs; skipped with the reason where none can be started)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gymforge import config
from sandbox import Limits, Mount, SandboxUnavailable, Session, backend_for, get_backend
from sandbox.check import host_procs_with, survivors

LIMITS = Limits(wall_time_s=20.0, memory_bytes=256 * 1024**2, cpus=1.0, pids=64, output_bytes=8 * 1024)
SECRETS = {"OPENAI_API_KEY": "sk-test-secret", "HF_TOKEN": "hf_test_secret", "NATS_URL": "nats://secret:4222",
           "GYMFORGE_SECRET": "gf-secret"}
ISOLATED = ("bwrap", "docker")


# --- the docker engine: whatever DOCKER_HOST answers, else podman's API service started here -----------

def _docker_answers() -> bool:
    try:
        from sandbox.docker_backend import connect

        connect()
        return True
    except SandboxUnavailable:
        return False


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from sandbox.docker_backend import connect
    from sandbox.image import DEFAULT_IMAGE

    service = None
    saved = os.environ.get("DOCKER_HOST")
    if not _docker_answers():
        if not (shutil.which("podman") and shutil.which("runc")):
            pytest.skip("no Docker-API engine answers and podman/runc are not installed (apt-get install podman runc)")
        from sandbox.podman import start_service

        try:
            service = start_service(tmp_path_factory.mktemp("podman"))
        except SandboxUnavailable as e:
            pytest.skip(f"podman API service could not start: {e}")
        os.environ["DOCKER_HOST"] = service.docker_host
    try:
        import docker

        try:
            connect().images.get(os.environ.get("GYMFORGE_SANDBOX_IMAGE", DEFAULT_IMAGE))
        except docker.errors.ImageNotFound:
            pytest.skip(f"image {DEFAULT_IMAGE} not built on this engine: run `gymforge sandbox build-image`")
        yield os.environ.get("DOCKER_HOST", "default socket")
    finally:
        if service is not None:
            service.stop()
            if saved is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = saved


@pytest.fixture(params=["bwrap", "process", "docker"])
def backend_name(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    name = request.param
    if name == "docker":
        request.getfixturevalue("docker_engine")
    if name == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bwrap not installed: apt-get install bubblewrap")
    return name


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    return SECRETS


@pytest.fixture
async def session(backend_name: str, tmp_path: Path, secrets_in_env: dict[str, str]) -> AsyncIterator[Session]:
    ws = tmp_path / "ws"
    ws.mkdir()
    s = await get_backend(backend_name, allow_process=True).open(ws, LIMITS)
    try:
        yield s
    finally:
        await s.close()


def needs_isolation(name: str, what: str) -> None:
    if name not in ISOLATED:
        pytest.skip(f"the {name} backend has no {what} isolation by design")


def mark() -> str:
    """A unique `sleep` argument, to find the process on the host by its command line."""
    return f"3600.{secrets.randbelow(10**9)}"


async def assert_no_survivors(s: Session, m: str) -> None:
    assert await survivors(s, m) == 0
    assert host_procs_with(m) == []


# --- the task runtime and the interface -----------------------------------------------------------------

async def test_python_runtime_has_the_task_packages(session: Session) -> None:
    code = ("import numpy, pandas, sklearn.linear_model as lm\n"
            "df = pandas.DataFrame({'x': [0.0, 1.0, 2.0], 'y': [1.0, 3.0, 5.0]})\n"
            "print(round(lm.LinearRegression().fit(df[['x']], df['y']).coef_[0], 6), numpy.__version__ > '1')")
    r = await session.exec(["python", "-c", code])
    assert r.ok, r.stderr
    assert r.stdout.split() == ["2.0", "True"]
    assert (await session.exec("python3 -c 'import sys; print(sys.version_info[:2] >= (3, 11))'")).stdout == "True\n"


async def test_str_runs_under_sh_and_sequence_as_argv(session: Session) -> None:
    assert (await session.exec("echo $((1 + 2)) | tr 3 x")).stdout == "x\n"
    r = await session.exec(["echo", "$HOME", "a b"])
    assert r.stdout == "$HOME a b\n"
    r = await session.exec("exit 3")
    assert (r.exit_code, r.ok, r.timed_out) == (3, False, False)


async def test_concurrent_execs_in_one_session(session: Session) -> None:
    results = await asyncio.gather(*(session.exec(f"sleep 0.2; echo {i}") for i in range(4)))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(4)]
    assert all(r.ok for r in results)


async def test_workdir_env_and_extra_variables(session: Session) -> None:
    r = await session.exec('pwd; echo "$HOME|$LANG|$PYTHONUNBUFFERED|$MPLBACKEND|$OMP_NUM_THREADS|$EXTRA"',
                           env={"EXTRA": "given"})
    pwd, values = r.stdout.splitlines()
    assert pwd == session.workdir
    assert values == f"{session.workdir}|C.UTF-8|1|Agg|1|given"


async def test_host_secrets_are_scrubbed(session: Session, secrets_in_env: dict[str, str]) -> None:
    r = await session.exec(["env"])
    assert r.ok
    for name, value in secrets_in_env.items():
        assert name not in r.stdout and value not in r.stdout


async def test_put_get_round_trip(session: Session) -> None:
    data = bytes(range(256)) * 10
    await session.put("sub/dir/blob.bin", data)
    r = await session.exec("wc -c < sub/dir/blob.bin && printf made > sub/out.txt")
    assert r.stdout.strip() == str(len(data)), r.stderr
    assert await session.get("sub/dir/blob.bin") == data
    assert await session.get("sub/out.txt") == b"made"
    with pytest.raises(ValueError):
        await session.get("../outside")
    with pytest.raises(ValueError):
        await session.put("/etc/x", b"")


async def test_get_never_follows_a_symlink_out(session: Session, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host secret")
    await session.exec(["ln", "-s", str(secret), "link"])
    await session.exec(["mkdir", "-p", "d"])
    await session.exec(["ln", "-s", str(tmp_path), "d/up"])
    with pytest.raises(OSError):
        await session.get("link")
    with pytest.raises(OSError):
        await session.get("d/up/host-secret.txt")
    with pytest.raises(OSError):
        await session.put("d/up/planted.txt", b"x")
    assert not (tmp_path / "planted.txt").exists()


# --- limits -------------------------------------------------------------------------------------------

async def test_timeout_kills_the_command_and_its_children(session: Session) -> None:
    m = mark()
    r = await session.exec(f"sleep {m} & sleep {m} & sleep {m}", timeout=1.0)
    assert r.timed_out and not r.ok
    assert r.exit_code == 124
    await assert_no_survivors(session, m)


async def test_background_children_do_not_outlive_a_finished_exec(session: Session) -> None:
    m = mark()
    r = await session.exec(f"sleep {m} & echo started")
    assert r.ok and r.stdout == "started\n"
    await assert_no_survivors(session, m)


async def test_cancelled_exec_leaves_nothing_running(session: Session) -> None:
    m = mark()
    task = asyncio.create_task(session.exec(f"sleep {m} & sleep {m}", timeout=60))
    await asyncio.sleep(0.7)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_no_survivors(session, m)


async def test_memory_past_the_limit_dies(session: Session) -> None:
    code = "x = []\nfor i in range(64):\n  x.append(bytearray(16 * 2**20))\nprint('survived')"
    r = await session.exec(["python", "-c", code])
    assert not r.ok and "survived" not in r.stdout
    assert r.oom_killed or "MemoryError" in r.stderr or r.exit_code == 137, r
    assert (await session.exec("echo alive")).ok  # the session survives its process being killed


async def test_fork_bomb_is_contained(session: Session, backend_name: str) -> None:
    how = getattr(session, "describe_enforcement", dict)().get("pids", "")
    if how.startswith("rlimit") and os.geteuid() == 0:
        pytest.skip(f"no pids cgroup here and RLIMIT_NPROC does not bind root: {how}")
    attempts = 4 * LIMITS.pids
    code = (f"import os, time\nn = 0\nfor i in range({attempts}):\n  try:\n    pid = os.fork()\n  except OSError:\n"
            "    print('FAILED', n); break\n  if pid == 0:\n    time.sleep(30); os._exit(0)\n  n += 1\nelse:\n"
            "  print('SPAWNED', n)")
    r = await session.exec(["python", "-c", code], timeout=30)
    assert "FAILED" in r.stdout, r
    assert int(r.stdout.split()[-1]) <= LIMITS.pids
    host = await asyncio.create_subprocess_exec("true")
    assert await host.wait() == 0  # the host can still fork
    for _ in range(100):  # the process backend's orphans are reaped by the host's init, which may be slow
        if (await session.exec("echo alive")).ok:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the session did not recover after the fork bomb")


async def test_huge_output_keeps_head_and_tail(session: Session) -> None:
    code = ("import sys\nsys.stdout.write('HEAD' + 'x' * 2_000_000 + 'TAIL')\n"
            "sys.stderr.write('EHEAD' + 'y' * 2_000_000 + 'ETAIL')")
    r = await session.exec(["python", "-c", code])
    assert r.ok and r.truncated
    for text, head, tail in ((r.stdout, "HEAD", "TAIL"), (r.stderr, "EHEAD", "ETAIL")):
        assert text.startswith(head) and text.endswith(tail)
        assert "bytes truncated" in text
        assert len(text) < LIMITS.output_bytes + 100


async def test_small_output_is_not_truncated(session: Session) -> None:
    r = await session.exec(["python", "-c", "print('a' * 1000)"])
    assert not r.truncated and r.stdout == "a" * 1000 + "\n"


# --- isolation ----------------------------------------------------------------------------------------

async def test_network_is_unreachable(session: Session, backend_name: str) -> None:
    needs_isolation(backend_name, "network")
    connections = 0

    def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        r = await session.exec(["python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 3)"])
        assert r.exit_code != 0 and connections == 0
        r = await session.exec(["python", "-c", "import socket; print(socket.getaddrinfo('pypi.org', 443))"])
        assert r.exit_code != 0 and "gaierror" in r.stderr
    finally:
        server.close()
        await server.wait_closed()


async def test_no_write_outside_the_workspace(session: Session, backend_name: str, tmp_path: Path) -> None:
    needs_isolation(backend_name, "file")
    outside = tmp_path / "outside"
    outside.mkdir()
    for target in ("/etc/gf-probe", "/usr/gf-probe", "/gf-probe", str(outside / "probe")):
        r = await session.exec(["sh", "-c", f"echo x > {target}"])
        assert r.exit_code != 0, target
    assert not (outside / "probe").exists()
    assert (await session.exec("echo x > /tmp/scratch && cat /tmp/scratch")).stdout == "x\n"


async def test_planted_files_cannot_be_read(session: Session, backend_name: str, tmp_path: Path) -> None:
    needs_isolation(backend_name, "file")
    token = secrets.token_hex(8)
    data_secret = tmp_path / "data" / f"labels-{token}.csv"
    data_secret.parent.mkdir()
    data_secret.write_text(token)
    home_secret = Path.home() / f".gymforge-test-{token}"
    home_secret.write_text(token)
    try:
        for path in (data_secret, home_secret):
            r = await session.exec(["cat", str(path)])
            assert r.exit_code != 0 and token not in r.stdout
        r = await session.exec(["sh", "-c", f"find / -path /proc -prune -o -path /usr -prune -o -name '*{token}*' -print 2>/dev/null"])
        assert r.stdout == ""  # neither file is anywhere in the sandbox's tree
    finally:
        home_secret.unlink()


async def test_per_exec_mount_is_seen_by_that_exec_only(session: Session, backend_name: str, tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    if backend_name not in ISOLATED:
        with pytest.raises(SandboxUnavailable):
            await session.exec("true", mounts=[Mount(hidden, "/gf/hidden")])
        pytest.skip("the process backend cannot mount (it refuses, as asserted)")
    prep = await session.exec("echo 1,0,1 > /gf/hidden/answers.csv", mounts=[Mount(hidden, "/gf/hidden", read_only=False)])
    assert prep.ok, prep.stderr
    assert (hidden / "answers.csv").read_text() == "1,0,1\n"
    ev = await session.exec("cat /gf/hidden/answers.csv; echo x > /gf/hidden/w", mounts=[Mount(hidden, "/gf/hidden")])
    assert ev.stdout == "1,0,1\n" and ev.exit_code != 0  # read-only: readable, not writable
    agent = await session.exec("cat /gf/hidden/answers.csv; ls /gf/hidden")
    assert agent.exit_code != 0 and "1,0,1" not in agent.stdout


async def test_session_mounts_are_in_every_exec(backend_name: str, tmp_path: Path) -> None:
    needs_isolation(backend_name, "file")
    raw, ws = tmp_path / "raw", tmp_path / "ws"
    raw.mkdir()
    ws.mkdir()
    (raw / "train.csv").write_text("a,b\n")
    async with await get_backend(backend_name, allow_process=True).open(ws, LIMITS, [Mount(raw, "/gf/raw")]) as s:
        for _ in range(2):
            assert (await s.exec("cat /gf/raw/train.csv")).stdout == "a,b\n"
        assert (await s.exec("touch /gf/raw/new")).exit_code != 0
    assert not (raw / "new").exists()


# --- choosing a backend -------------------------------------------------------------------------------

def test_get_backend_by_name_and_settings() -> None:
    with pytest.raises(SandboxUnavailable, match="GYMFORGE_SANDBOX_ALLOW_PROCESS=1"):
        get_backend("process")
    with pytest.raises(SandboxUnavailable, match="unknown sandbox backend"):
        get_backend("chroot")
    settings = config.load(environ={"GYMFORGE_SANDBOX_ALLOW_PROCESS": "1", "GYMFORGE_SANDBOX": "process"})
    assert backend_for(settings.sandbox).name == "process"


def test_missing_bwrap_says_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox import bwrap

    monkeypatch.setattr(bwrap.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        bwrap.BwrapBackend()


async def test_without_cgroups_memory_falls_back_to_rlimit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if not shutil.which("bwrap"):
        pytest.skip("bwrap not installed: apt-get install bubblewrap")
    from sandbox import limits, local

    monkeypatch.setattr(local.Cgroups, "create", classmethod(lambda cls, lim, wanted=None: limits.Cgroups()))
    async with await get_backend("bwrap").open(tmp_path, LIMITS) as s:
        assert s.describe_enforcement()["memory"].startswith("rlimit RLIMIT_AS")
        r = await s.exec(["python", "-c", "x = bytearray(1024 * 2**20)"])
        assert r.exit_code == 1 and "MemoryError" in r.stderr and not r.oom_killed
        assert (await s.exec(["python", "-c", "x = bytearray(64 * 2**20); print(len(x))"])).ok


async def test_network_only_when_asked_for(tmp_path: Path) -> None:
    if not shutil.which("bwrap"):
        pytest.skip("bwrap not installed: apt-get install bubblewrap")
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connect = ["python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 3); print('ok')"]
    try:
        for network, expected in ((True, "ok\n"), (False, "")):
            async with await get_backend("bwrap").open(tmp_path, Limits(network=network)) as s:
                assert (await s.exec(connect)).stdout == expected
    finally:
        server.close()
        await server.wait_closed()

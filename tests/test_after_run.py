"""After `gymforge run`, with no server left running, the reading commands serve the run's NATS store
themselves (gymforge/local_nats.py) and show its history; a remote URL that is down is one line."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from bus import Bus, BusSettings, EmbeddedNats, make_envelope
from bus.server import free_port, url_answers
from domain.payloads import PAYLOADS, TopicProposed
from gymforge.local_nats import LocalNats
from tests.helpers.cli import Result, gymforge


def stored_events(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return {f"gf.{t}": n for t, n in con.execute("SELECT type, COUNT(*) FROM ledger GROUP BY type")}
    finally:
        con.close()


async def nothing_answers(url: str) -> bool:
    return not await url_answers(url)


async def check_status(url: str, data_dir: Path) -> dict:
    r = await gymforge("status", "--json", url=url, data_dir=data_dir)
    assert r.code == 0, r.err
    return json.loads(r.out)


@pytest.mark.timeout(600)
async def test_reading_commands_after_a_real_run_need_no_server(tmp_path: Path) -> None:
    data_dir, url = tmp_path / "gf", f"nats://127.0.0.1:{free_port()}"
    env = {"GYMFORGE_TEACHER_PORT": str(free_port())}
    run = await gymforge("run", "--topics", "1", "--attempts", "1", "--idle-seconds", "4", url=url,
                         data_dir=data_dir, env=env, timeout=480)
    assert run.code == 0, run.err[-3000:]
    assert await nothing_answers(url), "run left its server running"
    events = stored_events(data_dir / "gymforge.db")
    assert events.get("gf.trajectory.completed") == 1, (events, run.out)

    status = await check_status(url, data_dir)
    assert status["stream"]["subjects"] == events  # the run's history: its store, not a new empty one
    assert {c["name"] for c in status["consumers"]} >= {"sink", "solver", "filter"}
    assert await nothing_answers(url) and not (data_dir / "nats.pid").exists()

    tail = await gymforge("tail", "--no-follow", "--json", url=url, data_dir=data_dir)
    assert tail.code == 0, tail.err
    types = [json.loads(x)["type"] for x in tail.out.splitlines()]
    assert len(types) == sum(events.values()) and "trajectory.completed" in types
    human = await gymforge("tail", "trajectory.*", "--no-follow", url=url, data_dir=data_dir)
    assert human.code == 0 and len(human.out.splitlines()) == events["gf.trajectory.completed"] + sum(
        n for k, n in events.items() if k in ("gf.trajectory.accepted", "gf.trajectory.rejected")), human.out

    dlq = await gymforge("dlq", "list", url=url, data_dir=data_dir)
    assert (dlq.code, dlq.out.strip()) == (0, "no dead letters"), dlq.err
    for fmt in ("sft", "traj"):
        exp = await gymforge("export", fmt, "--status", "all", "--out", str(tmp_path / fmt), url=url,
                             data_dir=data_dir, timeout=120)
        assert exp.code == 0, exp.err
    assert len(list((tmp_path / "traj").glob("*.traj"))) == 1
    assert len((tmp_path / "sft" / "train.jsonl").read_text().splitlines()) == 1
    assert await nothing_answers(url)

    # export mlgym with the dataset cache gone: the datasets come from the run's object store, served for it
    shutil.rmtree(data_dir / "cache" / "datasets")
    mlgym = await gymforge("export", "mlgym", "--out", str(tmp_path / "mlgym"), url=url, data_dir=data_dir,
                           timeout=300)
    assert mlgym.code == 0, mlgym.err
    assert len(list((tmp_path / "mlgym" / "configs" / "tasks").glob("*.yaml"))) == 1, mlgym.out
    assert await nothing_answers(url) and not (data_dir / "nats.pid").exists()


async def fill_store(data_dir: Path, port: int, n: int) -> None:
    """A data dir's store as `run` leaves it: n events in <data_dir>/nats, the server stopped."""
    async with EmbeddedNats(data_dir / "nats", port=port) as server:
        bus = await Bus.connect(BusSettings(url=server.url), types=PAYLOADS)
        for i in range(n):
            await bus.publish(make_envelope("topic.proposed", TopicProposed(title=f"topic {i}"), producer="test"))
        await bus.close()


async def test_two_reading_commands_at_once_share_one_server_and_the_last_stops_it(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "gf", free_port()
    url = f"nats://127.0.0.1:{port}"
    await fill_store(data_dir, port, 5)
    assert await nothing_answers(url)
    follow = await asyncio.create_subprocess_exec(  # a long reader, started first: it starts the server
        *_cli("tail", "--json"), env=_env(url, data_dir), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        for _ in range(400):
            if await url_answers(url):
                break
            await asyncio.sleep(0.05)
        results: list[Result] = await asyncio.gather(
            *(gymforge("status", "--json", url=url, data_dir=data_dir) for _ in range(3)),
            gymforge("tail", "--no-follow", "--json", url=url, data_dir=data_dir))
        assert all(r.code == 0 for r in results), [r.err for r in results]
        for r in results[:3]:
            assert json.loads(r.out)["stream"]["subjects"] == {"gf.topic.proposed": 5}
        assert len(results[3].out.splitlines()) == 5
        assert await url_answers(url), "a short reader stopped the server the follower still uses"
    finally:
        follow.terminate()
        await follow.wait()
    assert follow.returncode in (0, 130), (await follow.stderr.read()).decode()  # type: ignore[union-attr]
    assert await nothing_answers(url) and not (data_dir / "nats.pid").exists()
    assert (await check_status(url, data_dir))["stream"]["subjects"] == {"gf.topic.proposed": 5}  # intact

    killed = await asyncio.create_subprocess_exec(*_cli("tail"), env=_env(url, data_dir))
    while not (await url_answers(url) and (data_dir / "nats.pid").exists()):
        await asyncio.sleep(0.05)
    killed.kill()  # a reader killed outright leaves its server running, and no lease
    await killed.wait()
    assert await url_answers(url)
    assert (await check_status(url, data_dir))["stream"]["subjects"] == {"gf.topic.proposed": 5}
    assert await nothing_answers(url) and not (data_dir / "nats.pid").exists()  # the next reader stopped it


def _cli(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "gymforge.cli", *args]


def _env(url: str, data_dir: Path) -> dict[str, str]:
    import os

    from tests.helpers.cli import ROOT

    return {**os.environ, "GYMFORGE_NATS_URL": url, "GYMFORGE_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}


async def test_leases_in_one_process_and_a_server_nobody_leased_is_left_alone(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "gf", free_port()
    data_dir.mkdir()
    url = f"nats://127.0.0.1:{port}"
    first = await asyncio.to_thread(LocalNats(data_dir, url).acquire)
    second = await asyncio.to_thread(LocalNats(data_dir, url).acquire)
    assert (first.started, second.started) == (True, False) and await url_answers(url)
    first.release()  # the starter ends first: the other still uses it
    assert await url_answers(url)
    second.release()
    assert await nothing_answers(url) and not (data_dir / "nats.pid").exists()

    async with EmbeddedNats(tmp_path / "theirs", port=port) as theirs:  # e.g. `gymforge nats`, or a test's
        lease = await asyncio.to_thread(LocalNats(data_dir, url).acquire)
        assert not lease.started
        lease.release()
        assert await url_answers(theirs.url)


async def test_a_remote_url_that_is_down_or_no_embedded_server_is_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "gf"
    data_dir.mkdir()
    local = f"nats://127.0.0.1:{free_port()}"
    cases = [
        (("status",), "nats://192.0.2.1:4222", {}),  # TEST-NET-1: never answers
        (("tail", "--no-follow"), "nats://192.0.2.1:4222", {}),
        (("status",), local, {"GYMFORGE_EMBEDDED_NATS": "false"}),
    ]
    for args, url, env in cases:
        r = await gymforge(*args, url=url, data_dir=data_dir, env=env)
        assert r.code == 2, (args, r)
        assert r.err.strip() == f"gymforge: cannot reach NATS at {url}: start it, or point GYMFORGE_NATS_URL " \
                                "at a running server", (args, r.err)
    assert not (data_dir / "nats").exists() and await nothing_answers(local)


async def test_web_serves_the_stores_bus_and_stops_its_server_when_it_ends(tmp_path: Path) -> None:
    import aiohttp

    data_dir, port = tmp_path / "gf", free_port()
    url = f"nats://127.0.0.1:{port}"
    await fill_store(data_dir, port, 4)
    web = await asyncio.create_subprocess_exec(*_cli("web", "--port", "0"), env=_env(url, data_dir),
                                               stderr=asyncio.subprocess.PIPE)
    try:
        line = ""
        while "dashboard on" not in line:
            line = (await asyncio.wait_for(web.stderr.readline(), 60)).decode()  # type: ignore[union-attr]
            assert line, "gymforge web exited before serving"
        base = line.split(" on ", 1)[1].split(" ", 1)[0]
        async with aiohttp.ClientSession(base) as http:
            for _ in range(200):  # the live feed connects in the background
                async with http.get("/api/bus") as r:
                    bus = await r.json()
                if bus["connected"]:
                    break
                await asyncio.sleep(0.1)
        assert bus["connected"] and bus["stream"]["messages"] == 4, bus
    finally:
        web.terminate()
        await asyncio.wait_for(web.wait(), 30)
    assert await nothing_answers(url) and not (data_dir / "nats.pid").exists()

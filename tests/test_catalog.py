"""The dataset catalogs: the built-in one, local datasets, the Hub over HTTP (a local server answering
in the real APIs' shapes), the usability checks and the `gymforge catalog` commands."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from bus import Bus, make_envelope
from bus.codec import validate_payload
from catalog import (
    CatalogUnreachable,
    DatasetNotFound,
    DatasetProfile,
    DatasetUnavailable,
    HubCatalog,
    LocalCatalog,
    build_builtin,
    check,
    resolve_columns,
)
from catalog.builtin import BUILTIN
from catalog.convert import flatten_images
from catalog.features import features_to_types
from catalog.hub_cache import ResponseCache
from catalog.splits import split_indices
from domain.payloads import PAYLOADS, DatasetCandidate, DatasetRejected, DatasetVerified, TopicProposed
from domain.tasks import TASK_TYPES
from gymforge import catalog_cli, config
from gymforge.app import build_agent
from gymforge.errors import UserError

datasets.disable_progress_bars()


# --- the built-in catalog ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gymforge-data")


@pytest.fixture(scope="module")
def builtin(data_dir: Path) -> list[DatasetProfile]:
    return build_builtin(data_dir / "catalog")


def read_split(directory: Path, split: str) -> tuple[pd.DataFrame, datasets.Dataset]:
    path = directory / f"{split}.parquet"
    return pd.read_parquet(path), datasets.Dataset(pq.read_table(path))


def test_builtin_catalog_covers_every_task_type_with_real_data(builtin: list[DatasetProfile]) -> None:
    assert {p.id for p in builtin} == {spec.name for spec in BUILTIN}, (
        "run scripts/setup.sh: a data package is missing"
    )
    assert {p.task_type for p in builtin} == set(TASK_TYPES)
    for profile in builtin:
        assert profile.source == "builtin" and profile.license and len(profile.description) > 80
        assert set(profile.split_sizes) == {"train", "test"}
        assert (
            profile.split_sizes["test"] >= 30 and profile.split_sizes["train"] > profile.split_sizes["test"]
        )
        assert 1 <= len(profile.sample_rows) <= 5
        assert check(profile, [], None, profile.task_type) == [], profile.id


def test_builtin_splits_load_back_as_the_cards_say(builtin: list[DatasetProfile], data_dir: Path) -> None:
    for profile in builtin:
        directory = data_dir / "catalog" / profile.id
        card = json.loads((directory / "card.json").read_text())
        assert card["name"] == profile.id and card["split_sizes"] == profile.split_sizes
        for split, size in card["split_sizes"].items():
            frame, dataset = read_split(directory, split)
            assert len(frame) == size == dataset.num_rows
            assert features_to_types(dataset.features.to_dict()) == card["features"]
            assert list(frame.columns) == [*card["input_columns"], card["label_column"]]
        check_conventions(card, *read_split(directory, "train"), read_split(directory, "test")[0])


def check_conventions(
    card: dict[str, Any], train: pd.DataFrame, dataset: datasets.Dataset, test: pd.DataFrame
) -> None:
    label = train[card["label_column"]]
    task_type = card["task_type"]
    if task_type.endswith("classification"):
        assert card["features"][card["label_column"]] == "int" and label.dtype.kind == "i"
        assert label.nunique() == len(card["class_names"][card["label_column"]])
    else:
        assert label.dtype.kind == "f" or label.dtype.kind == "i"
    if task_type == "image_classification":
        assert card["input_columns"] == ["image"] and card["label_column"] == "label"
        assert {len(pixels) for pixels in train["image"]} == {math.prod(card["image_shape"])}
    if task_type == "text_classification":
        assert card["input_columns"] == ["text"] and all(isinstance(t, str) and t for t in train["text"])
    if task_type == "time_series_classification":
        assert card["input_columns"] == ["series"] and card["features"]["series"] == "list<float>"
        assert len({len(series) for series in train["series"]}) == 1
    if task_type == "count_regression":
        assert label.dtype.kind == "i" and (label >= 0).all()
    if task_type == "time_series_forecasting":
        time = card["time_column"]
        assert card["input_columns"][0] == time
        assert train[time].is_monotonic_increasing and train[time].iloc[-1] < test[time].iloc[0]


def test_digits_matches_the_documented_card(builtin: list[DatasetProfile]) -> None:
    digits = next(p for p in builtin if p.id == "digits")
    assert digits.split_sizes == {"train": 1437, "test": 360}
    assert digits.features == {"image": "list<float>", "label": "int"} and digits.image_shape == [8, 8]


def test_a_second_build_is_a_no_op(builtin: list[DatasetProfile], data_dir: Path) -> None:
    files = sorted((data_dir / "catalog").rglob("*"))
    before = {path: path.stat().st_mtime_ns for path in files}
    again = build_builtin(data_dir / "catalog")
    assert [p.model_dump() for p in again] == [p.model_dump() for p in builtin]
    assert {path: path.stat().st_mtime_ns for path in sorted((data_dir / "catalog").rglob("*"))} == before


# --- local datasets -------------------------------------------------------------------------------


def reviews_dataset() -> datasets.DatasetDict:
    features = datasets.Features(
        {"review": datasets.Value("string"), "stars": datasets.ClassLabel(names=["bad", "good"])}
    )
    rows = [
        {"review": f"review number {i} {'great' if i % 2 else 'awful'}", "stars": i % 2} for i in range(150)
    ]
    train, valid = rows[:120], rows[120:]
    return datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(train, features=features),
            "validation": datasets.Dataset.from_list(valid, features=features),
        }
    )


def test_add_a_save_to_disk_directory_with_a_readme_card(tmp_path: Path) -> None:
    source = tmp_path / "reviews"
    reviews_dataset().save_to_disk(str(source))
    (source / "README.md").write_text(
        "---\nlicense: mit\ntask_categories:\n- text-classification\nlabel_column: stars\n---\n"
        "# Reviews\n\nShort made-up product reviews, labelled good or bad.\n"
    )
    catalog = LocalCatalog(tmp_path / "catalog")
    profile = catalog.add(source)
    assert (
        profile.id == "reviews" and profile.source == "local" and profile.task_type == "text_classification"
    )
    assert (
        profile.license == "mit"
        and profile.description == "Short made-up product reviews, labelled good or bad."
    )
    assert profile.split_sizes == {"train": 120, "test": 30}  # validation became test
    assert profile.features == {"text": "str", "label": "int"}
    assert profile.class_names == {"label": ["bad", "good"]}
    assert [p.id for p in catalog.list()] == ["reviews"]
    assert catalog.describe("reviews") == profile

    dest = tmp_path / "task" / "data"
    dest.mkdir(parents=True)
    (dest / "validation.parquet").write_bytes(b"stale")
    (dest / "notes.txt").write_text("kept")
    copied = catalog.materialize("reviews", dest)
    assert copied == profile
    assert sorted(p.name for p in dest.iterdir()) == [
        "card.json",
        "notes.txt",
        "test.parquet",
        "train.parquet",
    ]
    frame = pd.read_parquet(dest / "test.parquet")
    assert frame["text"].tolist() == reviews_dataset()["validation"]["review"]
    assert frame["label"].tolist() == reviews_dataset()["validation"]["stars"]


def write_houses(folder: Path) -> None:
    folder.mkdir()
    rows = [
        {
            "rooms": 1 + i % 5,
            "area": 30.0 + 7 * i,
            "city": ["Lyon", "Oslo", "Kyoto"][i % 3],
            "price": 1000.0 + 13 * i,
        }
        for i in range(200)
    ]
    pd.DataFrame(rows).to_csv(folder / "houses.csv", index=False)
    card = {
        "name": "houses", "task_type": "tabular_regression", "license": "CC0-1.0",
        "description": "Made-up house prices.", "input_columns": ["rooms", "area", "city"], "label_column": "price",
    }  # fmt: skip
    (folder / "card.json").write_text(json.dumps(card))


def test_add_csv_with_a_card_splits_deterministically(tmp_path: Path) -> None:
    write_houses(tmp_path / "src")
    catalog = LocalCatalog(tmp_path / "catalog")
    profile = catalog.add(tmp_path / "src")
    assert (profile.id, profile.task_type, profile.label_column) == ("houses", "tabular_regression", "price")
    assert profile.input_columns == ["rooms", "area", "city"]
    assert profile.features == {"rooms": "int", "area": "float", "city": "str", "price": "float"}
    assert profile.split_sizes == {"train": 160, "test": 40}
    assert check(profile, [], None, "tabular_regression", allowed_licenses=["cc0-1.0"]) == []
    first_test = pd.read_parquet(tmp_path / "catalog" / "houses" / "test.parquet")

    with pytest.raises(DatasetUnavailable, match="already in the catalog"):
        catalog.add(tmp_path / "src")
    catalog.add(tmp_path / "src", replace=True)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "catalog" / "houses" / "test.parquet"), first_test
    )


def test_add_a_shuffled_time_series_is_put_in_order_and_cut_at_the_end(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    frame = pd.DataFrame(
        {
            "date": days.strftime("%Y-%m-%d"),
            "rain": range(120),
            "visitors": [float(i % 7) for i in range(120)],
        }
    )
    frame.sample(frac=1.0, random_state=3).to_csv(tmp_path / "src" / "visits.csv", index=False)
    card = {"task_type": "time_series_forecasting", "label_column": "visitors", "input_columns": ["rain"]}
    (tmp_path / "src" / "card.json").write_text(json.dumps(card))
    profile = LocalCatalog(tmp_path / "catalog").add(tmp_path / "src", name="visits")
    assert profile.time_column == "date" and profile.input_columns == ["date", "rain"]
    assert profile.split_sizes == {"train": 96, "test": 24}
    train = pd.read_parquet(tmp_path / "catalog" / "visits" / "train.parquet")
    test = pd.read_parquet(tmp_path / "catalog" / "visits" / "test.parquet")
    assert (
        train["date"].tolist() == frame["date"].tolist()[:96]
        and test["date"].tolist() == frame["date"].tolist()[96:]
    )


def test_add_guesses_an_image_task_and_flattens_nested_pixels(tmp_path: Path) -> None:
    grids = [[[(i + r + c) % 256 for c in range(4)] for r in range(4)] for i in range(60)]
    datasets.Dataset.from_dict({"pixels": grids, "label": [i % 3 for i in range(60)]}).save_to_disk(
        str(tmp_path / "tiles")
    )
    profile = LocalCatalog(tmp_path / "catalog").add(tmp_path / "tiles")
    assert profile.task_type == "image_classification" and profile.image_shape == [4, 4]
    frame = pd.read_parquet(tmp_path / "catalog" / "tiles" / "train.parquet")
    assert {len(pixels) for pixels in frame["image"]} == {16}


def test_image_files_without_pillow_are_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    cells = pa.array(
        [{"bytes": b"\x89PNG...", "path": None}], pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    )
    images = datasets.Dataset(pa.table({"img": cells, "label": [0]})).cast_column("img", datasets.Image())
    with pytest.raises(DatasetUnavailable, match="needs Pillow"):
        flatten_images(datasets.DatasetDict({"train": images}), "img", None)


def test_local_errors(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "catalog")
    with pytest.raises(DatasetNotFound):
        catalog.describe("nothing")
    with pytest.raises(DatasetNotFound):
        catalog.describe("../etc")
    with pytest.raises(DatasetUnavailable, match="does not exist"):
        catalog.add(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailable, match="holds no dataset"):
        catalog.add(tmp_path / "empty")
    write_houses(tmp_path / "src")
    card = json.loads((tmp_path / "src" / "card.json").read_text())
    (tmp_path / "src" / "card.json").write_text(json.dumps(card | {"task_type": "regression"}))
    with pytest.raises(DatasetUnavailable, match="task_type 'regression' in the card is not one of"):
        catalog.add(tmp_path / "src")
    (tmp_path / "src" / "card.json").write_text(json.dumps(card | {"label_column": "cost"}))
    with pytest.raises(DatasetUnavailable, match="column.s. cost not in the data"):
        catalog.add(tmp_path / "src")
    assert catalog.ids() == []


def test_splits_are_stratified_or_chronological() -> None:
    labels = ["a"] * 80 + ["b"] * 20
    train, test = split_indices(100, labels, chronological=False)
    assert (len(train), len(test)) == (80, 20) and sorted(train + test) == list(range(100))
    assert sum(labels[i] == "b" for i in test) == 4
    assert split_indices(100, labels, chronological=False) == (train, test)
    assert split_indices(10, None, chronological=True) == (list(range(8)), [8, 9])


# --- the Hub, against a local server answering in the real APIs' shapes ---------------------------


def parquet_bytes(dataset: datasets.Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.to_parquet(buffer)
    return buffer.getvalue()


def hub_datasets() -> dict[str, dict[str, Any]]:
    sentiment = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["neg", "pos"]),
            "score": datasets.Value("float32"),
        }
    )

    def sentences(n: int, offset: int) -> datasets.Dataset:
        rows = [{"sentence": f"sentence {offset + i}", "label": i % 2, "score": i / n} for i in range(n)]
        return datasets.Dataset.from_list(rows, features=sentiment)

    prices = datasets.Dataset.from_dict(
        {
            "rooms": [1 + i % 4 for i in range(300)],
            "area": [20.0 + i for i in range(300)],
            "price": [100.0 + 3 * i for i in range(300)],
        }
    )
    return {
        "acme/reviews": {"license": "mit", "splits": {"train": sentences(80, 0), "test": sentences(20, 80)}},
        "acme/gated": {
            "license": "cc-by-4.0",
            "gated": "manual",
            "splits": {"train": sentences(60, 0), "test": sentences(20, 60)},
        },
        "acme/prices": {"license": "cc-by-nc-4.0", "splits": {"train": prices}},
    }


class FakeHub:
    """The Hub API and the dataset viewer on one local server; records each request's Authorization."""

    CONFIG = "default"

    def __init__(self) -> None:
        self.datasets = hub_datasets()
        self.auth: list[tuple[str, str | None]] = []
        self.times: list[tuple[str, float]] = []  # (path, monotonic time) of every request
        self.plan: dict[str, list[tuple[int, dict[str, str]]]] = {}  # path -> error answers to give first
        self.not_modified = 0
        self.base = ""
        self.files_base = ""
        self.app = web.Application(middlewares=[self.record])
        self.app.router.add_get("/api/datasets/{id:.+}", self.model_info)
        for name in ("is-valid", "splits", "info", "first-rows", "parquet"):
            self.app.router.add_get(f"/{name}", self.viewer)
        self.app.router.add_get("/files/{owner}/{name}/{config}/{split}/0000.parquet", self.parquet_file)

    @web.middleware
    async def record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Records the request; answers a planned error first; gives JSON answers an ETag and answers 304
        to a matching If-None-Match, as the Hub does."""
        self.auth.append((request.path, request.headers.get("Authorization")))
        self.times.append((request.path, time.monotonic()))
        if self.plan.get(request.path):
            status, headers = self.plan[request.path].pop(0)
            return web.json_response({"error": f"planned {status}"}, status=status, headers=headers)
        resp = await handler(request)
        if isinstance(resp, web.Response) and resp.status == 200 and resp.content_type == "application/json":
            etag = '"' + hashlib.sha256(resp.body).hexdigest()[:16] + '"'  # type: ignore[arg-type]
            if request.headers.get("If-None-Match") == etag:
                self.not_modified += 1
                return web.Response(status=304, headers={"ETag": etag})
            resp.headers["ETag"] = etag
        return resp

    def visible(self, request: web.Request, dataset_id: str) -> dict[str, Any] | None:
        spec = self.datasets.get(dataset_id)
        if spec and spec.get("gated") and request.headers.get("Authorization") != "Bearer secret":
            return None
        return spec

    async def model_info(self, request: web.Request) -> web.Response:
        dataset_id = request.match_info["id"]
        spec = self.datasets.get(dataset_id)
        if request.headers.get("Authorization") == "Bearer expired":
            message = "Invalid credentials in Authorization header"
            return web.json_response({"error": message}, status=401, headers={"X-Error-Message": message})
        if spec is None:
            status = 401 if "Authorization" not in request.headers else 404
            return web.json_response(
                {"error": "Repository not found"}, status=status, headers={"X-Error-Code": "RepoNotFound"}
            )
        return web.json_response({
            "_id": "65f0c0ffee", "id": dataset_id, "author": dataset_id.split("/")[0], "sha": spec.get("sha", "0" * 40),
            "lastModified": "2026-01-02T03:04:05.000Z", "private": False, "gated": spec.get("gated", False),
            "disabled": False, "downloads": 7, "likes": 1, "tags": ["task_categories:text-classification", f"license:{spec['license']}"],
            "cardData": {"license": spec["license"], "pretty_name": dataset_id.split("/")[1]},
            "siblings": [{"rfilename": "README.md"}], "createdAt": "2026-01-01T00:00:00.000Z",
            "description": f"The {dataset_id} test dataset.", "usedStorage": 1234,
        })  # fmt: skip

    async def viewer(self, request: web.Request) -> web.Response:
        dataset_id = request.query.get("dataset", "")
        spec = self.visible(request, dataset_id)
        if spec is None:
            return web.json_response(
                {"error": "The dataset does not exist, or is not accessible without authentication (private or gated)."},
                status=401, headers={"X-Error-Code": "ExternalUnauthenticatedError"},
            )  # fmt: skip
        splits: dict[str, datasets.Dataset] = spec["splits"]
        endpoint = request.path.strip("/")
        if endpoint == "is-valid":
            return web.json_response(
                {"viewer": True, "preview": True, "search": True, "filter": True, "statistics": True}
            )
        if endpoint == "splits":
            items = [{"dataset": dataset_id, "config": self.CONFIG, "split": name} for name in splits]
            return web.json_response({"splits": items, "pending": [], "failed": []})
        if endpoint == "info":
            return web.json_response(
                {
                    "dataset_info": {self.CONFIG: self.config_info(dataset_id, splits)},
                    "pending": [],
                    "failed": [],
                    "partial": False,
                }
            )
        if endpoint == "first-rows":
            return web.json_response(
                self.first_rows(dataset_id, splits[request.query["split"]], request.query)
            )
        return web.json_response(
            {
                "parquet_files": self.parquet_listing(dataset_id, splits),
                "pending": [],
                "failed": [],
                "partial": False,
            }
        )

    def config_info(self, dataset_id: str, splits: dict[str, datasets.Dataset]) -> dict[str, Any]:
        first = next(iter(splits.values()))
        return {
            "description": "", "citation": "", "homepage": "", "license": "", "features": first.features.to_dict(),
            "builder_name": "parquet", "dataset_name": dataset_id.split("/")[1], "config_name": self.CONFIG,
            "version": {"version_str": "0.0.0", "major": 0, "minor": 0, "patch": 0},
            "splits": {name: {"name": name, "num_bytes": ds.data.nbytes, "num_examples": ds.num_rows, "dataset_name": None} for name, ds in splits.items()},
            "download_size": 4321, "dataset_size": sum(ds.data.nbytes for ds in splits.values()),
        }  # fmt: skip

    def first_rows(self, dataset_id: str, dataset: datasets.Dataset, query: Any) -> dict[str, Any]:
        features = [
            {"feature_idx": i, "name": n, "type": t}
            for i, (n, t) in enumerate(dataset.features.to_dict().items())
        ]
        rows = [
            {"row_idx": i, "row": row, "truncated_cells": []}
            for i, row in enumerate(dataset.select(range(min(100, dataset.num_rows))))
        ]
        return {
            "dataset": dataset_id,
            "config": query["config"],
            "split": query["split"],
            "features": features,
            "rows": rows,
            "truncated": False,
        }

    def parquet_listing(self, dataset_id: str, splits: dict[str, datasets.Dataset]) -> list[dict[str, Any]]:
        return [
            {"dataset": dataset_id, "config": self.CONFIG, "split": name, "filename": "0000.parquet",
             "url": f"{self.files_base}/files/{dataset_id}/{self.CONFIG}/{name}/0000.parquet", "size": len(parquet_bytes(ds))}
            for name, ds in splits.items()
        ]  # fmt: skip

    async def parquet_file(self, request: web.Request) -> web.Response:
        spec = self.datasets[f"{request.match_info['owner']}/{request.match_info['name']}"]
        return web.Response(
            body=parquet_bytes(spec["splits"][request.match_info["split"]]),
            content_type="application/octet-stream",
        )


@pytest.fixture
async def fake_hub(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeHub]:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    hub = FakeHub()
    runner = web.AppRunner(hub.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hub.base = hub.files_base = f"http://127.0.0.1:{port}"
    yield hub
    await runner.cleanup()


def hub_catalog(hub: FakeHub, token: str | None = None, **options: Any) -> HubCatalog:
    return HubCatalog(endpoint=hub.base, datasets_server_endpoint=hub.base, token=token, **options)


INFO = "/api/datasets/acme/reviews"


async def test_hub_waits_out_a_429_s_retry_after_and_retries_a_5xx(fake_hub: FakeHub) -> None:
    fake_hub.plan[INFO] = [(429, {"Retry-After": "1"}), (503, {})]
    async with hub_catalog(fake_hub, backoff_base_s=0.05) as hub:
        profile = await hub.describe("acme/reviews")
    assert profile.id == "acme/reviews" and profile.split_sizes
    asked = [t for path, t in fake_hub.times if path == INFO]
    assert len(asked) == 3 and asked[1] - asked[0] >= 0.95  # the Retry-After was honoured


async def test_hub_gives_up_after_its_retries_and_never_retries_a_refusal(fake_hub: FakeHub) -> None:
    fake_hub.plan[INFO] = [(503, {})] * 10
    async with hub_catalog(fake_hub, max_retries=2, backoff_base_s=0.01) as hub:
        with pytest.raises(CatalogUnreachable, match="HTTP 503"):
            await hub.describe("acme/reviews")
        assert sum(path == INFO for path, _ in fake_hub.times) == 3
        fake_hub.plan[INFO] = [(429, {"Retry-After": "3600"})]  # longer than it waits: the caller retries later
        with pytest.raises(CatalogUnreachable, match="HTTP 429"):
            await hub.describe("acme/reviews")
        assert sum(path == INFO for path, _ in fake_hub.times) == 4
        with pytest.raises(DatasetNotFound):
            await hub.describe("acme/nope")
    assert sum(path == "/api/datasets/acme/nope" for path, _ in fake_hub.times) == 1


async def test_hub_answers_are_cached_then_revalidated_by_etag(fake_hub: FakeHub, tmp_path: Path) -> None:
    async with hub_catalog(fake_hub, cache=ResponseCache(tmp_path / "hub", ttl_s=3600)) as hub:
        first = await hub.describe("acme/reviews")
    asked = len(fake_hub.times)
    async with hub_catalog(fake_hub, cache=ResponseCache(tmp_path / "hub", ttl_s=3600)) as hub:  # a new process
        assert await hub.describe("acme/reviews") == first
    assert len(fake_hub.times) == asked  # served from the cache: not one request
    async with hub_catalog(fake_hub, cache=ResponseCache(tmp_path / "hub", ttl_s=0)) as hub:  # stale: revalidated
        assert await hub.describe("acme/reviews") == first
    assert fake_hub.not_modified == len(fake_hub.times) - asked > 0
    async with hub_catalog(fake_hub, cache=ResponseCache(tmp_path / "hub", ttl_s=3600)) as hub:
        for _ in range(2):  # an error is not kept
            with pytest.raises(DatasetNotFound):
                await hub.describe("acme/nope")
    assert sum(path == "/api/datasets/acme/nope" for path, _ in fake_hub.times) == 2


async def test_hub_describes_and_materializes_an_accepted_dataset(fake_hub: FakeHub, tmp_path: Path) -> None:
    async with hub_catalog(fake_hub) as hub:
        profile = await hub.describe("acme/reviews")
        assert (profile.source, profile.license, profile.config, profile.gated) == (
            "hub",
            "mit",
            "default",
            False,
        )
        assert profile.features == {"sentence": "str", "label": "int", "score": "float"}
        assert profile.split_sizes == {"train": 80, "test": 20} and profile.class_names == {
            "label": ["neg", "pos"]
        }
        assert profile.sample_rows[0] == {"sentence": "sentence 0", "label": 0, "score": 0.0}
        assert resolve_columns(profile, "text_classification") == (["sentence"], "label")
        assert (
            check(
                profile, ["sentence"], "label", "text_classification", min_rows=50, allowed_licenses=["mit"]
            )
            == []
        )

        written = await hub.materialize("acme/reviews", tmp_path / "data", task_type="text_classification",
                                        input_columns=["sentence"], label_column="label")  # fmt: skip
    assert written.source == "hub" and written.task_type == "text_classification"
    assert written.features == {"text": "str", "label": "int"} and written.split_sizes == {
        "train": 80,
        "test": 20,
    }
    test = pd.read_parquet(tmp_path / "data" / "test.parquet")
    assert test["text"].tolist() == [f"sentence {80 + i}" for i in range(20)]
    assert all(auth is None for _, auth in fake_hub.auth)


async def test_hub_missing_dataset_raises_not_found_with_the_api_message(fake_hub: FakeHub) -> None:
    async with hub_catalog(fake_hub) as hub:
        with pytest.raises(DatasetNotFound, match="Repository not found") as caught:
            await hub.describe("acme/nope")
    assert caught.value.dataset_id == "acme/nope"


async def test_hub_gated_dataset_without_a_token_is_rejected(fake_hub: FakeHub, tmp_path: Path) -> None:
    async with hub_catalog(fake_hub) as hub:
        profile = await hub.describe("acme/gated")
        assert profile.gated and profile.features == {}
        reasons = check(
            profile, ["sentence"], "label", "text_classification", token_present=hub.token_present
        )
        assert len(reasons) == 1 and "gated" in reasons[0] and "HF_TOKEN" in reasons[0]
        with pytest.raises(DatasetUnavailable, match="gated"):
            await hub.materialize("acme/gated", tmp_path / "data", task_type="text_classification")
    assert [path for path, _ in fake_hub.auth] == ["/api/datasets/acme/gated"] * 2  # the viewer is not asked


async def test_hub_token_is_sent_as_bearer_to_the_hub_hosts_only(fake_hub: FakeHub, tmp_path: Path) -> None:
    fake_hub.files_base = fake_hub.base.replace("127.0.0.1", "localhost")  # parquet files on another host
    async with hub_catalog(fake_hub, token="secret") as hub:
        profile = await hub.describe("acme/gated")
        assert profile.gated and profile.split_sizes == {"train": 60, "test": 20}
        assert (
            check(profile, ["sentence"], "label", "text_classification", min_rows=50, token_present=True)
            == []
        )
        await hub.materialize("acme/gated", tmp_path / "data", task_type="text_classification")
    api_calls = [auth for path, auth in fake_hub.auth if not path.startswith("/files/")]
    file_calls = [auth for path, auth in fake_hub.auth if path.startswith("/files/")]
    assert len(api_calls) >= 5 and set(api_calls) == {"Bearer secret"}
    assert len(file_calls) == 2 and set(file_calls) == {None}


async def test_hub_license_columns_and_split_cut(fake_hub: FakeHub, tmp_path: Path) -> None:
    async with hub_catalog(fake_hub) as hub:
        profile = await hub.describe("acme/prices")
        assert profile.license == "cc-by-nc-4.0" and profile.split_sizes == {"train": 300}
        refused = check(
            profile, ["rooms", "area"], "price", "tabular_regression", allowed_licenses=["mit", "cc-by-4.0"]
        )
        assert refused == ["license cc-by-nc-4.0 is not allowed; allowed: cc-by-4.0, mit"]
        missing = check(profile, ["rooms", "garden"], "price", "tabular_regression")
        assert len(missing) == 1 and "garden" in missing[0] and "not in the dataset" in missing[0]
        assert check(profile, ["rooms", "area"], "cost", "tabular_regression") == [
            "label column 'cost' not in the dataset (columns: rooms, area, price)"
        ]
        written = await hub.materialize(
            "acme/prices", tmp_path / "data", max_rows=200, task_type="tabular_regression"
        )
    assert written.split_sizes == {"train": 160, "test": 40} and written.label_column == "price"
    assert written.input_columns == ["rooms", "area"]


async def test_hub_invalid_token_and_bad_id(fake_hub: FakeHub) -> None:
    async with hub_catalog(fake_hub) as hub:
        with pytest.raises(DatasetNotFound, match="not a valid Hub dataset id"):
            await hub.describe("../../etc/passwd")
    async with hub_catalog(fake_hub, token="expired") as hub:
        with pytest.raises(DatasetUnavailable, match="HF_TOKEN was refused: Invalid credentials"):
            await hub.describe("acme/reviews")


# --- checks ---------------------------------------------------------------------------------------

GOOD = DatasetProfile(
    id="good", source="hub", license="mit", features={"a": "float", "b": "str", "label": "int"},
    input_columns=["a", "b"], label_column="label", split_sizes={"train": 800, "test": 200},
    size_bytes=10_000, distinct_counts={"label": 3},
)  # fmt: skip
LIMITS = {"min_rows": 100, "max_bytes": 1_000_000, "allowed_licenses": ["MIT", "apache-2.0"]}


def reasons(task_type: str = "tabular_classification", inputs: tuple[str, ...] = ("a", "b"), label: str = "label",
            token_present: bool = False, **changes: Any) -> list[str]:  # fmt: skip
    return check(
        GOOD.model_copy(update=changes), list(inputs), label, task_type, token_present=token_present, **LIMITS
    )


def test_a_good_profile_passes() -> None:
    assert reasons() == []
    assert reasons(gated=True, token_present=True) == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"gated": True}, "is gated on the Hub"),
        ({"private": True}, "is private"),
        ({"license": "gpl-3.0"}, "license gpl-3.0 is not allowed"),
        ({"license": None}, "license unknown"),
        ({"split_sizes": {"validation": 500}}, "no train split"),
        ({"split_sizes": {"train": 50, "test": 200}}, "train split has 50 rows, fewer than 100"),
        ({"split_sizes": {"train": 800, "test": 5}}, "test split has 5 rows, fewer than 20"),
        ({"size_bytes": 5_000_000}, "over the limit of 1,000,000"),
        ({"inputs": ("a", "zzz")}, "input column(s) zzz not in the dataset"),
        ({"label": "nope"}, "label column 'nope' not in the dataset"),
        ({"inputs": ("a", "label")}, "is also an input column"),
        (
            {"features": {"a": "float", "b": "str", "label": "float"}, "distinct_counts": {"label": 500}},
            "a regression target, not classes",
        ),
        (
            {"features": {"a": "float", "b": "str", "label": "list<int>"}},
            "classification needs int or str classes",
        ),
        (
            {"task_type": "tabular_regression", "features": {"a": "float", "b": "str", "label": "str"}},
            "needs a numeric target",
        ),
        ({"task_type": "tabular_regression", "class_names": {"label": ["x", "y", "z"]}}, "holds class ids"),
        ({"features": {"a": "list<float>", "b": "str", "label": "int"}}, "are not scalar"),
        ({"task_type": "image_classification", "inputs": ("b",)}, "not an image or a list of pixels"),
        ({"task_type": "text_classification", "inputs": ("a",)}, "is float, not a string"),
        (
            {
                "task_type": "time_series_forecasting",
                "inputs": ("a",),
                "features": {"a": "float", "b": "str", "label": "float"},
            },
            "no time column",
        ),
    ],
)
def test_each_rejection_reason_fires(kwargs: dict[str, Any], expected: str) -> None:
    found = reasons(**kwargs)
    assert len(found) == 1 and expected in found[0], found


def test_forecasting_image_and_text_accept_their_columns() -> None:
    series = {"date": "str", "temp": "float", "sales": "float"}
    assert reasons("time_series_forecasting", ("date", "temp"), "sales", features=series) == []
    assert reasons("image_classification", ("px",), features={"px": "list<int>", "label": "int"}) == []
    assert reasons("image_classification", ("img",), features={"img": "image", "label": "int"}) == []
    assert reasons("text_classification", ("b",)) == []


def test_resolve_columns_picks_conventional_defaults() -> None:
    def resolve(features: dict[str, str], task_type: str) -> tuple[list[str], str | None]:
        return resolve_columns(DatasetProfile(id="x", source="hub", features=features), task_type)

    assert resolve({"id": "int", "sentence": "str", "label": "int"}, "text_classification") == (
        ["sentence"],
        "label",
    )
    assert resolve({"label": "int", "img": "image"}, "image_classification") == (["img"], "label")
    assert resolve({"id": "int", "x1": "float", "x2": "str", "target": "float"}, "tabular_regression") == (
        ["x1", "x2"],
        "target",
    )
    assert resolve({"date": "str", "temp": "float", "sales": "float"}, "time_series_forecasting") == (
        ["date", "temp"],
        "sales",
    )
    assert resolve({"a": "float", "b": "int"}, "tabular_regression") == (["a"], "b")
    assert resolve({"a": "float"}, "tabular_classification") == (["a"], None)
    assert check(DatasetProfile(id="x", source="hub", features={"a": "float"}, split_sizes={"train": 500}),
                 [], None, "tabular_classification")[0].startswith("no label column")  # fmt: skip


# --- the command line -----------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir")
    catalog_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    args.settings = config.load({"data_dir": args.data_dir})  # as gymforge.cli.main does
    return args.func(args)


def test_cli_build_list_and_add(builtin: list[DatasetProfile], data_dir: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    assert run_cli("--data-dir", str(data_dir), "catalog", "build") == 0
    assert f"{len(builtin)} built-in datasets" in capsys.readouterr().out
    assert run_cli("--data-dir", str(data_dir), "catalog", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert {item["id"] for item in listed} == {p.id for p in builtin}

    monkeypatch.setenv("GYMFORGE_DATA_DIR", str(tmp_path / "data"))
    write_houses(tmp_path / "src")
    assert run_cli("catalog", "add", str(tmp_path / "src")) == 0
    assert "houses" in capsys.readouterr().out
    assert (tmp_path / "data" / "catalog" / "houses" / "card.json").is_file()
    assert run_cli("catalog", "list") == 0
    assert capsys.readouterr().out.startswith("houses ")
    with pytest.raises(UserError, match="does not exist"):
        run_cli("catalog", "add", str(tmp_path / "missing"))


async def test_the_verifier_reuses_a_hub_dataset_until_its_revision_changes(fake_hub: FakeHub, bus: Bus,
                                                                           data_dir: Path) -> None:
    s = config.load({"data_dir": data_dir, "hf_endpoint": fake_hub.base, "hf_viewer_endpoint": fake_hub.base,
                     "hf_cache_ttl_s": 0, "verifier_min_rows": 10}, environ={})
    agent = build_agent("verifier", bus, s)
    await agent.start()

    async def verify(n: int) -> DatasetVerified:
        topic = TopicProposed(title=f"Review sentiment {n}", task_type="text_classification",
                              candidate_datasets=[DatasetCandidate(id="acme/reviews", source="hub")])
        [emit] = await agent.handle(validate_payload(make_envelope("topic.proposed", topic, producer="test"), PAYLOADS))
        assert isinstance(emit.payload, DatasetVerified), emit.payload
        return emit.payload

    def downloads() -> int:
        return sum(path.startswith("/files/") for path, _ in fake_hub.times)

    try:
        first = await verify(1)
        assert isinstance(first, DatasetVerified) and downloads() == 2  # train and test
        second = await verify(2)  # another topic, same dataset, task and columns: no download
        assert downloads() == 2 and second.data == first.data and second.split_sizes == first.split_sizes
        fake_hub.datasets["acme/reviews"]["sha"] = "1" * 40  # a new commit on the Hub
        third = await verify(3)
        assert downloads() == 4 and third.data == first.data  # downloaded again (same bytes, same content key)
    finally:
        await agent.stop()


async def test_the_verifier_records_each_candidates_reason_and_tries_the_next(fake_hub: FakeHub, bus: Bus,
                                                                              data_dir: Path) -> None:
    s = config.load({"data_dir": data_dir, "hf_endpoint": fake_hub.base, "hf_viewer_endpoint": fake_hub.base,
                     "verifier_min_rows": 10, "verifier_allowed_licenses": ["mit", "cc-by-4.0"]}, environ={})
    agent = build_agent("verifier", bus, s)
    await agent.start()

    async def verify(*candidates: DatasetCandidate, max_bytes: int | None = None) -> Any:
        if max_bytes is not None:
            agent.settings = agent.settings.model_copy(update={"max_dataset_bytes": max_bytes})
        topic = TopicProposed(title="Review sentiment", task_type="text_classification",
                              candidate_datasets=list(candidates))
        [emit] = await agent.handle(validate_payload(make_envelope("topic.proposed", topic, producer="test"), PAYLOADS))
        return emit.payload

    def hub(dataset_id: str, **columns: Any) -> DatasetCandidate:
        return DatasetCandidate(id=dataset_id, source="hub", **columns)

    try:
        verified = await verify(hub("acme/missing"), hub("acme/gated"), hub("acme/prices"),
                                hub("acme/reviews", input_columns=["nope"], label_column="label"), hub("acme/reviews"))
        assert isinstance(verified, DatasetVerified) and verified.dataset_id == "acme/reviews"
        rejected = await verify(hub("acme/missing"), hub("acme/gated"), hub("acme/prices"),
                                hub("acme/reviews", input_columns=["nope"], label_column="label"))
        assert isinstance(rejected, DatasetRejected), rejected
        by: dict[str, str] = {}
        for reason in rejected.reasons:  # "<candidate>: <why>", every problem of every candidate
            name, _, why = reason.partition(": ")
            by[name] = f"{by.get(name, '')} | {why}"
        assert list(by) == ["acme/missing", "acme/gated", "acme/prices", "acme/reviews"], rejected.reasons
        assert "not found" in by["acme/missing"] and "gated" in by["acme/gated"] and "HF_TOKEN" in by["acme/gated"]
        assert "cc-by-nc-4.0" in by["acme/prices"] and "nope" in by["acme/reviews"]
        too_big = await verify(hub("acme/reviews"), max_bytes=100)
        assert isinstance(too_big, DatasetRejected) and "over the limit of 100" in too_big.reasons[0], too_big.reasons
    finally:
        await agent.stop()

"""The mirror over HTTP, in the shapes of the Hub API and the dataset viewer API (one server plays both):

  GET /api/datasets?search=&author=&filter=&sort=&direction=&limit=   list / search (a JSON array)
  GET /api/datasets/{owner}/{name}                                    dataset info
  GET /is-valid|/splits|/info|/first-rows|/parquet?dataset=…          the dataset viewer
  GET /datasets/{owner}/{name}/resolve/refs%2Fconvert%2Fparquet/{config}/{split}/0000.parquet

JSON answers carry an ETag and answer 304 to a matching If-None-Match, as the Hub does. A gated dataset's
data needs a token (any token: this stand-in cannot check grants); its info is public, as on the Hub.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from hubmirror.index import CONFIG, PARQUET, MirrorEntry, MirrorIndex, load_index, load_viewer, parquet_path

HF_TASKS = {
    "tabular_classification": "tabular-classification", "tabular_regression": "tabular-regression",
    "image_classification": "image-classification", "text_classification": "text-classification",
    "time_series_forecasting": "time-series-forecasting",
    "count_regression": "tabular-regression",  # the Hub has no count category: a count is a tabular target
}  # fmt: skip
# time_series_classification has no Hub task category either; its modality tag says what it is
NOT_FOUND = "Repository not found"
VIEWER_DENIED = ("The dataset does not exist, or is not accessible without authentication (private or gated). "
                 "Please check the spelling of the dataset name or retry with authentication.")
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


def size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "n>1M"


def hub_tags(entry: MirrorEntry) -> list[str]:
    task = [f"task_categories:{HF_TASKS[entry.task_type]}"] if entry.task_type in HF_TASKS else []
    modality = {"image_classification": "image", "text_classification": "text",
                "time_series_forecasting": "timeseries",
                "time_series_classification": "timeseries"}.get(entry.task_type or "", "tabular")
    return [*task, f"size_categories:{size_category(entry.num_rows)}", "format:parquet", f"modality:{modality}",
            "library:datasets", "library:pandas", f"license:{entry.license}", entry.domain.replace(" ", "-"),
            *entry.tags, "region:us"]


def card_data(entry: MirrorEntry) -> dict[str, Any]:
    card: dict[str, Any] = {"license": entry.license, "pretty_name": entry.pretty_name}
    if entry.task_type in HF_TASKS and entry.label_column:
        card["task_categories"] = [HF_TASKS[entry.task_type]]
        mapping = {entry.label_column: "target", **{c: c for c in entry.input_columns}}
        card["train-eval-index"] = [{"config": CONFIG, "task": HF_TASKS[entry.task_type],
                                     "splits": {"train_split": "train", "eval_split": "test"},
                                     "col_mapping": mapping}]
    return card


def list_item(entry: MirrorEntry, built_at: str) -> dict[str, Any]:
    """One dataset as `GET /api/datasets` lists it."""
    return {
        "_id": entry.sha[:24], "id": entry.id, "author": entry.id.split("/")[0], "sha": entry.sha,
        "lastModified": built_at, "private": False, "gated": "manual" if entry.gated else False,
        "disabled": False, "downloads": 0, "likes": 0, "tags": hub_tags(entry), "createdAt": built_at,
        "key": "", "description": entry.description[:300],
    }  # fmt: skip


def dataset_info(entry: MirrorEntry, built_at: str) -> dict[str, Any]:
    """`GET /api/datasets/{id}`."""
    files = [f"{CONFIG}/{split}/{PARQUET}" for split in entry.splits]
    return {**list_item(entry, built_at), "description": entry.description, "citation": entry.citation,
            "cardData": card_data(entry), "siblings": [{"rfilename": "README.md"}, *({"rfilename": f} for f in files)],
            "usedStorage": entry.size_bytes, "paperswithcode_id": None}


def config_info(entry: MirrorEntry, features: dict[str, Any]) -> dict[str, Any]:
    """One config's `DatasetInfo` dump, as `/info` gives it."""
    return {
        "description": entry.description, "citation": entry.citation, "homepage": entry.homepage,
        "license": entry.license, "features": features, "builder_name": "parquet",
        "dataset_name": entry.id.split("/")[1], "config_name": CONFIG,
        "version": {"version_str": "0.0.0", "major": 0, "minor": 0, "patch": 0},
        "splits": {name: {"name": name, "num_bytes": s.num_bytes, "num_examples": s.num_examples, "dataset_name": None}
                   for name, s in entry.splits.items()},
        "download_size": entry.size_bytes, "dataset_size": entry.size_bytes,
    }  # fmt: skip


def search(index: MirrorIndex, query: Any) -> list[MirrorEntry]:
    """`search` is a substring of the id (as on the Hub), `author` the namespace, every `filter` a tag."""
    text = query.get("search", "").lower()
    author = query.get("author", "")
    filters = [f for value in query.getall("filter", []) for f in value.split(",") if f]
    found = [e for e in index.datasets if text in e.id.lower() and (not author or e.id.split("/")[0] == author)
             and all(f in hub_tags(e) for f in filters)]
    sort = query.get("sort", "")
    if sort in ("id", "downloads", "likes", "lastModified", "createdAt"):
        reverse = query.get("direction", "-1") == "-1" and sort != "id"
        found.sort(key=lambda e: e.id if sort == "id" else 0, reverse=reverse)
    return found


class MirrorServer:
    """The mirror's HTTP server; `start()` binds, `base_url` is where it answers."""

    def __init__(self, root: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root, self.host, self.port = root, host, port
        self.index = load_index(root)
        self.entries = {e.id: e for e in self.index.datasets}
        self._viewer_cache: dict[str, dict[str, Any]] = {}
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[etags])
        app.router.add_get("/api/datasets", self.list_datasets)
        app.router.add_get("/api/datasets/{owner}/{name}", self.info)
        for name in ("is-valid", "splits", "info", "first-rows", "parquet"):
            app.router.add_get(f"/{name}", self.viewer)
        app.router.add_get("/datasets/{owner}/{name}/resolve/{tail:.*}", self.parquet_file)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- the Hub API ---------------------------------------------------------------------------------

    async def list_datasets(self, request: web.Request) -> web.Response:
        try:
            limit = min(int(request.query.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
        except ValueError:
            return error(400, "limit must be an integer", "BadRequest")
        found = search(self.index, request.query)[: max(limit, 0)]
        return web.json_response([list_item(e, self.index.built_at) for e in found])

    async def info(self, request: web.Request) -> web.Response:
        entry = self.entries.get(f"{request.match_info['owner']}/{request.match_info['name']}")
        if entry is None:
            status = 404 if "Authorization" in request.headers else 401  # the Hub hides what it will not show
            return error(status, NOT_FOUND, "RepoNotFound")
        return web.json_response(dataset_info(entry, self.index.built_at))

    # --- the dataset viewer ----------------------------------------------------------------------------

    async def viewer(self, request: web.Request) -> web.Response:
        entry = self.entries.get(request.query.get("dataset", ""))
        if entry is None or (entry.gated and not has_token(request)):
            return error(404 if entry is None else 401, VIEWER_DENIED,
                         "DatasetNotFoundError" if entry is None else "ExternalUnauthenticatedError")
        endpoint = request.path.strip("/")
        if endpoint == "is-valid":
            return web.json_response({"viewer": True, "preview": True, "search": True, "filter": True,
                                      "statistics": True})
        if endpoint == "splits":
            items = [{"dataset": entry.id, "config": CONFIG, "split": s} for s in entry.splits]
            return web.json_response({"splits": items, "pending": [], "failed": []})
        viewer = self.viewer_data(entry.id)
        if endpoint == "info":
            return web.json_response({"dataset_info": {CONFIG: config_info(entry, viewer["features"])},
                                      "pending": [], "failed": [], "partial": False})
        if endpoint == "first-rows":
            return self.first_rows(entry, viewer, request.query)
        base = f"{request.scheme}://{request.host}"
        files = [{"dataset": entry.id, "config": CONFIG, "split": split, "filename": PARQUET,
                  "url": f"{base}/datasets/{entry.id}/resolve/refs%2Fconvert%2Fparquet/{CONFIG}/{split}/{PARQUET}",
                  "size": s.num_bytes} for split, s in entry.splits.items()]
        return web.json_response({"parquet_files": files, "pending": [], "failed": [], "partial": False})

    def first_rows(self, entry: MirrorEntry, viewer: dict[str, Any], query: Any) -> web.Response:
        config, split = query.get("config", ""), query.get("split", "")
        if config != CONFIG or split not in entry.splits:
            return error(404, "Not found.", "ResponseNotFound")
        features = [{"feature_idx": i, "name": n, "type": t} for i, (n, t) in enumerate(viewer["features"].items())]
        rows = [{"row_idx": i, "row": row, "truncated_cells": []}
                for i, row in enumerate(viewer["first_rows"].get(split, []))]
        return web.json_response({"dataset": entry.id, "config": config, "split": split, "features": features,
                                  "rows": rows, "truncated": len(rows) < entry.splits[split].num_examples})

    def viewer_data(self, dataset_id: str) -> dict[str, Any]:
        if dataset_id not in self._viewer_cache:
            self._viewer_cache[dataset_id] = load_viewer(self.root, dataset_id)
        return self._viewer_cache[dataset_id]

    # --- files ---------------------------------------------------------------------------------------------

    async def parquet_file(self, request: web.Request) -> web.StreamResponse:
        entry = self.entries.get(f"{request.match_info['owner']}/{request.match_info['name']}")
        if entry is None or (entry.gated and not has_token(request)):
            return error(404 if entry is None else 401, NOT_FOUND if entry is None else VIEWER_DENIED,
                         "EntryNotFound" if entry is None else "GatedRepo")
        parts = unquote(request.raw_path.split("/resolve/", 1)[1].split("?", 1)[0]).split("/")
        if parts[:3] != ["refs", "convert", "parquet"] or len(parts) != 6 or parts[3] != CONFIG \
                or parts[4] not in entry.splits or parts[5] != PARQUET:
            return error(404, "Entry not found", "EntryNotFound")
        return web.FileResponse(parquet_path(self.root, entry.id, parts[4]))


def has_token(request: web.Request) -> bool:
    return request.headers.get("Authorization", "").startswith("Bearer ") and len(request.headers["Authorization"]) > 7


def error(status: int, message: str, code: str) -> web.Response:
    return web.json_response({"error": message}, status=status,
                             headers={"X-Error-Code": code, "X-Error-Message": message})


@web.middleware
async def etags(request: web.Request, handler: Any) -> web.StreamResponse:
    """An ETag on every JSON answer; 304 to a request that already holds it."""
    resp = await handler(request)
    if isinstance(resp, web.Response) and resp.status == 200 and resp.content_type == "application/json":
        etag = '"' + hashlib.sha256(resp.body).hexdigest()[:32] + '"'  # type: ignore[arg-type]
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        resp.headers["ETag"] = etag
    return resp

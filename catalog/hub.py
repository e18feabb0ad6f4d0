"""The Hugging Face Hub as a catalog, over aiohttp: the Hub API's dataset info, the dataset viewer's
`/is-valid`, `/splits`, `/info`, `/first-rows` and `/parquet`, and the parquet files themselves.

Errors: a missing id (404, or the Hub's 401 for a repo it will not show) raises `DatasetNotFound` with the
API's own message; a dataset we may not use raises `DatasetUnavailable`; network trouble, 429 and 5xx
raise `CatalogUnreachable` (worth a retry).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import structlog

from catalog.checks import access_reasons, resolve_columns, time_column_of
from catalog.hub_cache import ResponseCache
from catalog.hub_data import (
    ParquetConversion,
    choose_config,
    files_by_split,
    license_of,
    raw_split_name,
    split_name,
    with_viewer_data,
)
from catalog.layout import copy_layout, profile_from_dir
from catalog.models import CatalogUnreachable, DatasetNotFound, DatasetProfile, DatasetUnavailable

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_VIEWER = "https://datasets-server.huggingface.co"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
log = structlog.get_logger("gymforge.catalog")
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
CHUNK = 1 << 20


class HubCatalog:
    """`endpoint` defaults to https://huggingface.co; `token` to none (the configuration passes HubSettings').
    The token goes, as `Authorization: Bearer`, only to the endpoint's and the viewer's hosts."""

    def __init__(
        self,
        endpoint: str | None = None,
        datasets_server_endpoint: str | None = None,
        token: str | None = None,
        session: aiohttp.ClientSession | None = None,
        *,
        timeout: float = 60.0,
        cache: ResponseCache | None = None,
        max_retries: int = 4,
        backoff_base_s: float = 1.0,
        max_wait_s: float = 60.0,
    ) -> None:
        self.endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self.viewer = (datasets_server_endpoint or DEFAULT_VIEWER).rstrip("/")
        self.token = token or ""
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._trusted_hosts = {urlsplit(self.endpoint).netloc, urlsplit(self.viewer).netloc}
        self.cache = cache
        self.max_retries, self.backoff_base_s, self.max_wait_s = max_retries, backoff_base_s, max_wait_s

    @property
    def token_present(self) -> bool:
        return bool(self.token)

    async def __aenter__(self) -> HubCatalog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # --- the raw APIs -------------------------------------------------------------------------------

    async def dataset_info(self, dataset_id: str) -> dict[str, Any]:
        """The Hub API's `GET /api/datasets/{id}` (id, private, gated, disabled, cardData, tags, …)."""
        path = "/".join(quote(part, safe="") for part in _valid_id(dataset_id).split("/"))
        return await self._get_json(f"{self.endpoint}/api/datasets/{path}", dataset_id, api="hub")

    async def search(self, text: str = "", *, filters: Sequence[str] = (), limit: int = 20) -> list[dict[str, Any]]:
        """The Hub API's `GET /api/datasets?search=…&filter=…&sort=downloads&limit=…`: the datasets whose id
        contains `text` and that carry every tag in `filters`, most downloaded first."""
        params = {"search": text, "sort": "downloads", "direction": "-1", "limit": str(limit)}
        if filters:
            params["filter"] = ",".join(filters)
        answer = await self._get_json(f"{self.endpoint}/api/datasets", text or "*", api="hub search",
                                      params=params, expect=list)
        return [item for item in answer if isinstance(item, dict) and item.get("id")]

    async def is_valid(self, dataset_id: str) -> dict[str, Any]:
        return await self._viewer("is-valid", dataset_id)

    async def splits(self, dataset_id: str) -> list[dict[str, Any]]:
        return (await self._viewer("splits", dataset_id)).get("splits", [])

    async def info(self, dataset_id: str) -> dict[str, dict[str, Any]]:
        """Config name -> the `DatasetInfo` dump (features, splits' num_examples, dataset_size, …)."""
        return (await self._viewer("info", dataset_id)).get("dataset_info", {})

    async def first_rows(self, dataset_id: str, config: str, split: str) -> dict[str, Any]:
        return await self._viewer("first-rows", dataset_id, config=config, split=split)

    async def parquet_files(self, dataset_id: str) -> list[dict[str, Any]]:
        return (await self._viewer("parquet", dataset_id)).get("parquet_files", [])

    # --- describe and materialize ---------------------------------------------------------------------

    async def describe(self, dataset_id: str, config: str | None = None) -> DatasetProfile:
        """The dataset's profile. A gated or private dataset without a token is described from the Hub API
        alone (gated/private set, no columns): the viewer would refuse it."""
        info = await self.dataset_info(dataset_id)
        if info.get("disabled"):
            raise DatasetUnavailable("disabled on the Hub", dataset_id=dataset_id)
        base = self._base_profile(dataset_id, info)
        if access_reasons(base, self.token_present):
            return base
        valid = await self.is_valid(dataset_id)
        if not (valid.get("viewer") or valid.get("preview") or valid.get("valid")):
            raise DatasetUnavailable(
                "the dataset viewer cannot load it (is-valid: all false)", dataset_id=dataset_id
            )
        config = choose_config(await self.splits(dataset_id), config, dataset_id)
        config_info = (await self.info(dataset_id)).get(config, {})
        split_sizes = {
            split_name(name): int(split.get("num_examples") or 0)
            for name, split in (config_info.get("splits") or {}).items()
        }
        preview_split = (
            "train" if "train" in split_sizes else next(iter(config_info.get("splits") or {}), "train")
        )
        preview = (
            await self.first_rows(dataset_id, config, raw_split_name(config_info, preview_split))
            if valid.get("preview", True)
            else {}
        )
        return with_viewer_data(base, config, config_info, split_sizes, preview)

    def _base_profile(self, dataset_id: str, info: Mapping[str, Any]) -> DatasetProfile:
        card = info.get("cardData") or {}
        return DatasetProfile(
            id=info.get("id") or dataset_id,
            source="hub",
            description=str(info.get("description") or card.get("pretty_name") or "").strip(),
            license=license_of(card, info.get("tags") or []),
            gated=info.get("gated") not in (None, False, "false"),
            private=bool(info.get("private")),
            tags=[str(tag) for tag in info.get("tags") or []],
            origin=f"{self.endpoint}/datasets/{dataset_id}",
            revision=str(info["sha"]) if info.get("sha") else None,
        )

    async def materialize(
        self,
        dataset_id: str,
        dest_dir: Path | str,
        splits: Sequence[str] | None = None,
        max_rows: int | None = None,
        *,
        task_type: str,
        input_columns: Sequence[str] = (),
        label_column: str | None = None,
        config: str | None = None,
        max_bytes: int | None = None,
    ) -> DatasetProfile:
        """Download the dataset's parquet files (all of train/validation/test, or `splits`), keep at most
        `max_rows` rows per split, and write the standard layout into `dest_dir`."""
        profile = await self.describe(dataset_id, config)
        denied = access_reasons(profile, self.token_present)
        if denied:
            raise DatasetUnavailable("; ".join(denied), dataset_id=dataset_id)
        default_inputs, default_label = resolve_columns(profile, task_type, label_column)
        inputs, label = list(input_columns) or default_inputs, label_column or default_label
        if not inputs or label is None:
            raise DatasetUnavailable(f"no input/label columns for a {task_type} task", dataset_id=dataset_id)
        if profile.features.get(inputs[0]) == "image" and importlib.util.find_spec("PIL") is None:
            raise DatasetUnavailable(
                "decoding image files needs Pillow (pip install pillow)", dataset_id=dataset_id
            )
        files = files_by_split(await self.parquet_files(dataset_id), profile.config, splits)
        if not files:
            raise DatasetUnavailable(f"no parquet files for config {profile.config!r}", dataset_id=dataset_id)
        total = sum(int(f.get("size") or 0) for group in files.values() for f in group)
        if max_bytes is not None and total > max_bytes:
            raise DatasetUnavailable(
                f"parquet files are {total:,} bytes, over {max_bytes:,}", dataset_id=dataset_id
            )
        with tempfile.TemporaryDirectory(prefix="gf-hub-") as tmp:
            paths = await self._download_all(files, Path(tmp), dataset_id)
            meta = {
                "name": profile.id, "source": "hub", "task_type": task_type, "description": profile.description,
                "license": profile.license, "origin": f"{profile.origin} (config {profile.config})",
            }  # fmt: skip
            time_column = time_column_of(profile) if task_type == "time_series_forecasting" else None
            request = ParquetConversion(
                paths, Path(tmp) / "cache", task_type, inputs, label, time_column, max_rows, meta
            )
            written_dir = await asyncio.to_thread(request.run, Path(tmp) / "layout")
            directory = await asyncio.to_thread(copy_layout, written_dir, Path(dest_dir))
        written = await asyncio.to_thread(profile_from_dir, directory)
        return written.model_copy(
            update={
                "gated": profile.gated,
                "private": profile.private,
                "config": profile.config,
                "revision": profile.revision,
                "tags": profile.tags,
            }
        )

    # --- HTTP -------------------------------------------------------------------------------------------

    async def _viewer(self, endpoint: str, dataset_id: str, **params: str) -> dict[str, Any]:
        query = {"dataset": _valid_id(dataset_id), **params}
        return await self._get_json(f"{self.viewer}/{endpoint}", dataset_id, api=endpoint, params=query)

    def _headers(self, url: str) -> dict[str, str]:
        if self.token and urlsplit(url).netloc in self._trusted_hosts:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _get_json(
        self, url: str, dataset_id: str, *, api: str, params: Mapping[str, str] | None = None,
        expect: type = dict,
    ) -> Any:
        """One JSON answer: from the cache while fresh; else asked (revalidated with its ETag), with 429
        (after its Retry-After), 5xx and connection errors retried up to `max_retries` times."""
        headers = self._headers(url)
        key = self.cache.key(url, params, "Authorization" in headers) if self.cache else ""
        cached = self.cache.get(key) if self.cache else None
        if cached is not None and self.cache is not None and cached.fresh(self.cache.ttl_s):
            return cached.body
        if cached is not None and cached.etag:
            headers = {**headers, "If-None-Match": cached.etag}
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                async with self._client().get(url, params=params, headers=headers, timeout=self._timeout) as resp:
                    if resp.status == 304 and cached is not None and self.cache is not None:
                        self.cache.touch(key, cached)
                        return cached.body
                    if resp.status == 200:
                        body = await resp.json(content_type=None)
                        if not isinstance(body, expect):
                            raise CatalogUnreachable(
                                f"{api} for {dataset_id}: expected a JSON {expect.__name__}, got {type(body).__name__}")
                        if self.cache is not None:
                            self.cache.put(key, body, resp.headers.get("ETag"))
                        return body
                    error = http_error(resp.status, await _error_message(resp), dataset_id, api)
                    hinted = retry_after_s(resp.headers.get("Retry-After"))
                    if last or not isinstance(error, CatalogUnreachable) or (hinted or 0) > self.max_wait_s:
                        raise error
            except (aiohttp.ClientError, TimeoutError) as exc:
                if last:
                    raise CatalogUnreachable(f"{api} for {dataset_id}: {type(exc).__name__}: {exc}") from exc
                hinted = None
            wait = hinted if hinted is not None else self.backoff_base_s * 2**attempt * random.uniform(0.5, 1.0)
            log.info("hub retry", api=api, dataset_id=dataset_id, attempt=attempt + 1, wait_s=round(wait, 2))
            await asyncio.sleep(min(wait, self.max_wait_s))
        raise AssertionError("unreachable")

    async def _download_all(
        self, files: dict[str, list[Mapping[str, Any]]], folder: Path, dataset_id: str
    ) -> dict[str, list[Path]]:
        paths: dict[str, list[Path]] = {}
        for split, group in files.items():
            for i, item in enumerate(group):
                dest = folder / f"{split}-{i:04d}.parquet"
                paths.setdefault(split, []).append(await self._download(str(item["url"]), dest, dataset_id))
        return paths

    async def _download(self, url: str, dest: Path, dataset_id: str) -> Path:
        try:
            async with self._client().get(url, headers=self._headers(url), timeout=self._timeout) as resp:
                if resp.status != 200:
                    raise http_error(resp.status, await _error_message(resp), dataset_id, "parquet file")
                handle = await asyncio.to_thread(dest.open, "wb")
                try:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        await asyncio.to_thread(handle.write, chunk)
                finally:
                    await asyncio.to_thread(handle.close)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CatalogUnreachable(f"downloading {url}: {type(exc).__name__}: {exc}") from exc
        return dest


def retry_after_s(value: str | None) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is read as no hint)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def http_error(status: int, message: str, dataset_id: str, api: str) -> Exception:
    """The catalog error for an HTTP error answer of the Hub API (`api="hub"`) or the viewer."""
    if status == 401 and message == INVALID_CREDENTIALS:
        return DatasetUnavailable(f"HF_TOKEN was refused: {message}", dataset_id=dataset_id)
    if api == "hub" and status in (401, 404):
        return DatasetNotFound(dataset_id, message)
    if status == 429 or status >= 500 and status != 501:
        return CatalogUnreachable(f"{api} for {dataset_id}: HTTP {status}: {message}")
    return DatasetUnavailable(f"{api} answered HTTP {status}: {message}", dataset_id=dataset_id)


async def _error_message(resp: aiohttp.ClientResponse) -> str:
    """The API's own words: the X-Error-Message header, else the JSON body's `error`, else the text."""
    if resp.headers.get("X-Error-Message"):
        return resp.headers["X-Error-Message"]
    text = await resp.text()
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:300] or f"HTTP {resp.status}"
    return str(body.get("error") or text)[:300] if isinstance(body, dict) else text.strip()[:300]


def _valid_id(dataset_id: str) -> str:
    if not REPO_ID.match(dataset_id) or ".." in dataset_id:
        raise DatasetNotFound(dataset_id, "not a valid Hub dataset id (namespace/name)")
    return dataset_id

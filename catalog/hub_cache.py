"""Hub API answers kept on disk, so thousands of topics do not repeat the same calls.

One JSON file per request (the URL, its query, and whether a token was sent — never the token itself)
holds the answer's body, its ETag and when it was fetched. An answer younger than `ttl_s` is served
without a request; an older one with an ETag is revalidated (`If-None-Match`; a 304 keeps it). Only
200 answers are kept: an error is asked again next time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Cached:
    body: Any  # a JSON object (most APIs) or array (search)
    etag: str | None
    fetched_at: float

    def fresh(self, ttl_s: float, now: float | None = None) -> bool:
        return (time.time() if now is None else now) - self.fetched_at < ttl_s


class ResponseCache:
    def __init__(self, root: Path, ttl_s: float) -> None:
        self.root = Path(root)
        self.ttl_s = ttl_s

    @staticmethod
    def key(url: str, params: Mapping[str, str] | None, token_sent: bool) -> str:
        query = "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
        return hashlib.sha256(f"{url}?{query}\x1f{int(token_sent)}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Cached | None:
        try:
            raw = json.loads(self._path(key).read_text())
            return Cached(raw["body"], raw.get("etag"), float(raw["fetched_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none yet, or unreadable (a crash mid-write, a hand edit): asked again

    def put(self, key: str, body: Any, etag: str | None) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"body": body, "etag": etag, "fetched_at": time.time()}))
        os.replace(tmp, path)  # atomic: replicas sharing a data dir never read half a file

    def touch(self, key: str, cached: Cached) -> None:
        """A 304: the kept answer is current again."""
        with contextlib.suppress(OSError):
            self.put(key, cached.body, cached.etag)

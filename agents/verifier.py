"""verifier: `topic.proposed` -> `dataset.verified` | `dataset.rejected`.

Checks each candidate dataset through a catalog (local/built-in, or the Hugging Face Hub): existence,
access, license, splits, size, and that the input/label columns exist with usable types; materialises the
first usable one into the artifact store. A topic with no candidates (e.g. injected free text) gets the
catalog datasets whose names and descriptions best match its words.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import Field

from agents.artifacts import upload_dataset
from agents.runtime import Agent, AgentContext, Emit, RoleSettings
from bus import Event, Transient
from catalog.models import CatalogUnreachable, DatasetNotFound, DatasetProfile, DatasetUnavailable
from catalog.settings import HubSettings
from domain.payloads import DatasetCandidate, DatasetRejected, DatasetVerified, TopicProposed
from domain.tasks import TASK_TYPES, DataRef

TYPE_WORDS = {
    "image_classification": {"image", "images", "digit", "digits", "pixel", "vision", "handwritten", "picture"},
    "text_classification": {"text", "review", "reviews", "sentiment", "language", "speech", "document", "nlp"},
    "time_series_forecasting": {"forecast", "forecasting", "future", "monthly", "daily", "series", "trend"},
    "tabular_regression": {"predict", "regression", "estimate", "price", "amount", "progression"},
    "tabular_classification": {"classify", "classification", "species", "type", "diagnosis"},
    "time_series_classification": {"signal", "signals", "sensor", "gesture", "motion", "motions", "outline"},
    "count_regression": {"count", "counts", "visits", "trips", "events", "claims", "poisson"},
}


if TYPE_CHECKING:
    from catalog import HubCatalog

log = structlog.get_logger("gymforge.verifier")
BUCKET = "gf-datasets"  # reuse key -> {"data": DataRef, "profile": DatasetProfile} of a materialised Hub dataset


def reuse_key(profile: DatasetProfile, task_type: str, inputs: list[str], label: str) -> str | None:
    """What a materialised Hub dataset is reused by: its id, revision and config, the task and its columns.
    No revision known: no reuse (the data could have changed since)."""
    if not profile.revision:
        return None
    what = "\x1f".join([profile.id, profile.revision, profile.config or "", task_type, ",".join(inputs), label])
    return hashlib.sha256(what.encode()).hexdigest()[:32]

STOP = {"the", "and", "for", "with", "from", "that", "this", "are", "its", "into", "using", "each", "one"}


def words(text: str) -> set[str]:
    """Content words: lower-cased, three letters or more, common function words dropped."""
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 3 and w not in STOP}


def guess_task_type(title: str) -> str | None:
    w = words(title)
    scores = {t: len(w & kw) for t, kw in TYPE_WORDS.items()}
    best = max(scores, key=lambda t: scores[t])
    return best if scores[best] else None


def match_candidates(topic: TopicProposed, profiles: list[DatasetProfile], n: int = 3) -> list[DatasetCandidate]:
    """Catalog datasets for a free-text topic: word overlap with name, columns and description."""
    w = words(topic.title + " " + topic.description)
    task_type = topic.task_type or guess_task_type(topic.title)
    scored = []
    for p in profiles:
        if task_type and p.task_type != task_type:
            continue
        vocab = words(p.id.replace("_", " ")) | words(" ".join(p.features)) | words(p.description)
        score = 3 * len(w & words(p.id.replace("_", " "))) + len(w & vocab)
        if score:
            scored.append((score, p.id, p))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [DatasetCandidate(id=p.id, source=p.source) for _, _, p in scored[:n]]


class VerifierSettings(RoleSettings):
    hub: HubSettings = Field(default_factory=HubSettings)  # the shared `hf_*` section
    min_rows: int = Field(100, ge=1, description="rows a dataset needs at least")
    max_dataset_bytes: int = Field(1 << 30, ge=1, description="the largest dataset materialised, in bytes")
    allowed_licenses: list[str] | None = Field(None, description="licenses a Hub dataset may have (none: any)")


class VerifierAgent(Agent):
    role = "verifier"
    consumes = (TopicProposed,)
    produces = (DatasetVerified, DatasetRejected)
    ack_wait_s = 120.0
    Settings = VerifierSettings
    settings: VerifierSettings

    def __init__(self, ctx: AgentContext, settings: VerifierSettings | None = None) -> None:
        super().__init__(ctx, settings)
        from catalog import (
            LocalCatalog,  # datasets and pandas: seconds to import, so not at start-up of the CLI
        )

        self.local = LocalCatalog(ctx.data_dir / "catalog")
        self.hub_token = self.settings.hub.token_value()
        self.hub: HubCatalog | None = None

    async def start(self) -> None:
        self.kv: KeyValue = await self.ctx.bus.js.create_key_value(bucket=BUCKET, history=1)
        await asyncio.to_thread(self.local.build_builtin)

    async def stop(self) -> None:
        if self.hub:
            await self.hub.close()

    def hub_catalog(self) -> HubCatalog:
        if self.hub is None:
            from catalog import HubCatalog
            from catalog.hub_cache import ResponseCache

            h = self.settings.hub
            cache = ResponseCache(self.ctx.data_dir / "cache" / "hub", h.cache_ttl_s)
            self.hub = HubCatalog(h.api_url(), h.viewer_url(), self.hub_token or "", cache=cache,
                                  max_retries=h.max_retries)
        return self.hub

    async def handle(self, event: Event) -> Sequence[Emit]:
        topic = event.payload_as(TopicProposed)
        candidates = topic.candidate_datasets or match_candidates(topic, self.local.list())
        reasons: list[str] = []
        for cand in candidates:
            verified = await self.try_candidate(topic, cand, reasons)
            if verified is not None:
                return [Emit(verified)]
        if not candidates:
            reasons.append("no dataset in the catalog matches the topic; name one (candidate_datasets) or add one "
                           "with `gymforge catalog add`")
        return [Emit(DatasetRejected(topic=topic, reasons=reasons))]

    async def describe(self, cand: DatasetCandidate) -> DatasetProfile:
        if cand.source == "hub":
            return await self.hub_catalog().describe(cand.id)
        return await asyncio.to_thread(self.local.describe, cand.id)

    async def try_candidate(self, topic: TopicProposed, cand: DatasetCandidate,
                            reasons: list[str]) -> DatasetVerified | None:
        from catalog import check, resolve_columns

        try:
            profile = await self.describe(cand)
        except (DatasetNotFound, DatasetUnavailable) as exc:
            reasons.append(f"{cand.id}: {exc}")
            return None
        except CatalogUnreachable as exc:
            raise Transient(f"catalog unreachable for {cand.id}: {exc}") from None
        task_type = topic.task_type or profile.task_type
        if task_type not in TASK_TYPES:
            reasons.append(f"{cand.id}: no task type given and none known for the dataset")
            return None
        inputs, label = cand.input_columns, cand.label_column
        if not inputs or not label:
            default_inputs, default_label = resolve_columns(profile, task_type, label)
            inputs, label = inputs or default_inputs, label or default_label
        s = self.settings
        problems = check(profile, inputs, label, task_type, min_rows=s.min_rows, max_bytes=s.max_dataset_bytes,
                         allowed_licenses=s.allowed_licenses if cand.source == "hub" else None,
                         token_present=bool(self.hub_token))
        if problems or not label:
            reasons.extend(f"{cand.id}: {p}" for p in (problems or ["no label column"]))
            return None
        data, profile = await self.materialize(cand, profile, task_type, inputs, label)
        return DatasetVerified(
            topic=topic, dataset_id=cand.id, source=cand.source, task_type=task_type,  # type: ignore[arg-type]
            description=profile.description, license=profile.license, features=profile.features,
            input_columns=list(inputs), label_column=label, split_sizes=profile.split_sizes,
            sample_rows=profile.sample_rows[:3], data=data, passed_over=list(reasons),
        )

    async def materialize(self, cand: DatasetCandidate, profile: DatasetProfile, task_type: str,
                          inputs: list[str], label: str) -> tuple[DataRef, DatasetProfile]:
        """The dataset in the artifact store. A Hub dataset already materialised at the same revision with
        the same task and columns (by any replica) is reused instead of downloaded again."""
        key = reuse_key(profile, task_type, inputs, label) if cand.source == "hub" else None
        if key is not None and (reused := await self.reused(key)) is not None:
            return reused
        data, written = await self.download(cand, task_type, inputs, label)
        if key is not None:
            record = {"data": data.model_dump(mode="json"), "profile": written.model_dump(mode="json")}
            await self.kv.put(key, json.dumps(record).encode())
        return data, written

    async def reused(self, key: str) -> tuple[DataRef, DatasetProfile] | None:
        try:
            entry = await self.kv.get(key)
            record = json.loads(entry.value or b"{}")
            data, profile = DataRef.model_validate(record["data"]), DatasetProfile.model_validate(record["profile"])
        except (KeyNotFoundError, ValueError, KeyError):  # none yet, or a record this build cannot read
            return None
        store = await self.ctx.bus.artifacts()
        for name in data.splits.values():  # the objects must still be there (a bucket can be purged)
            try:
                await store.get_info(name)
            except NotFoundError:
                return None
        log.info("dataset reused", dataset_id=profile.id, revision=profile.revision, key=data.key)
        return data, profile

    async def download(self, cand: DatasetCandidate, task_type: str, inputs: list[str],
                       label: str) -> tuple[DataRef, DatasetProfile]:
        tmp = Path(tempfile.mkdtemp(prefix="verify-", dir=self.ctx.data_dir))
        try:
            if cand.source == "hub":
                try:
                    profile = await self.hub_catalog().materialize(
                        cand.id, tmp, task_type=task_type, input_columns=inputs, label_column=label,
                        max_bytes=self.settings.max_dataset_bytes)
                except CatalogUnreachable as exc:
                    raise Transient(f"hub unreachable while downloading {cand.id}: {exc}") from None
            else:
                profile = await asyncio.to_thread(self.local.materialize, cand.id, tmp)
            return await upload_dataset(self.ctx.bus, tmp), profile
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

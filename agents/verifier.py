"""verifier: `topic.proposed` -> `dataset.verified` | `dataset.rejected`.

Checks each candidate dataset through a catalog (local/built-in, or the Hugging Face Hub): existence,
access, license, splits, size, and that the input/label columns exist with usable types; materialises the
first usable one into the artifact store. A topic with no candidates (e.g. injected free text) gets the
catalog datasets whose names and descriptions best match its words.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.artifacts import upload_dataset
from agents.runtime import Agent, AgentContext, Emit
from bus import Event, Transient
from catalog import (
    CatalogUnreachable,
    DatasetNotFound,
    DatasetProfile,
    DatasetUnavailable,
    HubCatalog,
    LocalCatalog,
    check,
    resolve_columns,
)
from domain.payloads import DatasetCandidate, DatasetRejected, DatasetVerified, TopicProposed
from domain.tasks import TASK_TYPES

TYPE_WORDS = {
    "image_classification": {"image", "images", "digit", "digits", "pixel", "vision", "handwritten", "picture"},
    "text_classification": {"text", "review", "reviews", "sentiment", "language", "speech", "document", "nlp"},
    "time_series_forecasting": {"forecast", "forecasting", "future", "monthly", "daily", "series", "trend"},
    "tabular_regression": {"predict", "regression", "estimate", "price", "amount", "progression"},
    "tabular_classification": {"classify", "classification", "species", "type", "diagnosis"},
}


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


class VerifierAgent(Agent):
    role = "verifier"
    consumes = ("topic.proposed",)
    ack_wait_s = 120.0

    def __init__(self, ctx: AgentContext) -> None:
        super().__init__(ctx)
        o = ctx.options
        self.local = LocalCatalog(ctx.data_dir / "catalog")
        self.hub_token: str | None = o.get("hf_token")
        self.hub_args: dict[str, Any] = {"endpoint": o.get("hf_endpoint"), "datasets_server_endpoint":
                                         o.get("hf_viewer_endpoint"), "token": self.hub_token or ""}
        self.hub: HubCatalog | None = None
        self.min_rows: int = o.get("min_rows", 100)
        self.max_bytes: int = o.get("max_dataset_bytes", 1 << 30)
        self.allowed_licenses: list[str] | None = o.get("allowed_licenses")

    async def start(self) -> None:
        await asyncio.to_thread(self.local.build_builtin)

    async def stop(self) -> None:
        if self.hub:
            await self.hub.close()

    def hub_catalog(self) -> HubCatalog:
        if self.hub is None:
            self.hub = HubCatalog(**{k: v for k, v in self.hub_args.items() if v is not None})
        return self.hub

    async def handle(self, event: Event) -> Sequence[Emit]:
        topic: TopicProposed = event.payload  # type: ignore[assignment]
        candidates = topic.candidate_datasets or match_candidates(topic, self.local.list())
        reasons: list[str] = []
        for cand in candidates:
            verified = await self.try_candidate(topic, cand, reasons)
            if verified is not None:
                return [Emit("dataset.verified", verified)]
        if not candidates:
            reasons.append("no dataset in the catalog matches the topic; name one (candidate_datasets) or add one "
                           "with `gymforge catalog add`")
        return [Emit("dataset.rejected", DatasetRejected(topic=topic, reasons=reasons))]

    async def describe(self, cand: DatasetCandidate) -> DatasetProfile:
        if cand.source == "hub":
            return await self.hub_catalog().describe(cand.id)
        return await asyncio.to_thread(self.local.describe, cand.id)

    async def try_candidate(self, topic: TopicProposed, cand: DatasetCandidate,
                            reasons: list[str]) -> DatasetVerified | None:
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
            default_inputs, default_label = resolve_columns(profile, task_type)
            inputs, label = inputs or default_inputs, label or default_label
        problems = check(profile, inputs, label, task_type, min_rows=self.min_rows, max_bytes=self.max_bytes,
                         allowed_licenses=self.allowed_licenses if cand.source == "hub" else None,
                         token_present=bool(self.hub_token))
        if problems or not label:
            reasons.extend(f"{cand.id}: {p}" for p in (problems or ["no label column"]))
            return None
        data, profile = await self.materialize(cand, profile, task_type, inputs, label)
        return DatasetVerified(
            topic=topic, dataset_id=cand.id, source=cand.source, task_type=task_type,  # type: ignore[arg-type]
            description=profile.description, license=profile.license, features=profile.features,
            input_columns=list(inputs), label_column=label, split_sizes=profile.split_sizes,
            sample_rows=profile.sample_rows[:3], data=data,
        )

    async def materialize(self, cand: DatasetCandidate, profile: DatasetProfile, task_type: str,
                          inputs: list[str], label: str) -> tuple[Any, DatasetProfile]:
        tmp = Path(tempfile.mkdtemp(prefix="verify-", dir=self.ctx.data_dir))
        try:
            if cand.source == "hub":
                try:
                    profile = await self.hub_catalog().materialize(
                        cand.id, tmp, task_type=task_type, input_columns=inputs, label_column=label,
                        max_bytes=self.max_bytes)
                except CatalogUnreachable as exc:
                    raise Transient(f"hub unreachable while downloading {cand.id}: {exc}") from None
            else:
                profile = await asyncio.to_thread(self.local.materialize, cand.id, tmp)
            return await upload_dataset(self.ctx.bus, tmp), profile
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

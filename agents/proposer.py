"""proposer: `topic.requested` -> `topic.proposed` × count.

Asks the model for distinct topics, each with candidate datasets named by their Hub id from the model's own
knowledge (Hub search results and the local catalog are shown as hints, not as a menu); a request with a
given topic (injected free text) gets candidates the same way. Near-duplicates of topics already proposed
in the domain are dropped across replicas through a JetStream KV bucket (an atomic create per topic
signature; a redelivered request keeps the topics it claimed the first time).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import structlog
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import Field, ValidationError

from agents.llm_agent import LLMAgent
from agents.model_options import StructuredModelSettings
from agents.replies import ReplyError
from agents.reply_json import one_json, wrapped_list
from agents.runtime import Emit
from bus import Event, Poison
from catalog.settings import HubSettings
from domain.payloads import TopicProposed, TopicRequested
from domain.tasks import TASK_TYPES
from prompts import render

BUCKET = "gf-topics"
log = structlog.get_logger("gymforge.proposer")
STOP = {"a", "an", "the", "of", "on", "in", "for", "with", "from", "to", "and", "by", "using", "under", "that"}
NEAR_DUPLICATE = 0.8


def words(title: str) -> set[str]:
    return {w.rstrip("s") for w in re.findall(r"[a-z0-9]+", title.lower()) if w not in STOP}


def search_words(text: str) -> list[str]:
    """The text's content words to search the Hub for, longest first."""
    found = {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 4 and w not in STOP}
    return sorted(found, key=lambda w: (-len(w), w))


def signature(title: str) -> str:
    return hashlib.sha256(" ".join(sorted(words(title))).encode()).hexdigest()[:24]


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "general"


def topic_items(value: Any) -> list[Any] | None:
    """The topics a JSON value gives: an array, an object wrapping it ({"topics": [...]}, or one list-valued
    key), or one topic object alone."""
    if isinstance(value, dict) and "title" in value and not isinstance(value.get("topics"), list):
        return [value]
    return wrapped_list(value, "topics")


def parse_topics(text: str) -> list[TopicProposed]:
    items = one_json(text, topic_items, "a JSON array of topics")
    topics = []
    for i, item in enumerate(items):
        try:
            topics.append(TopicProposed.model_validate(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ReplyError(f"topic {i} is invalid: {'.'.join(map(str, err['loc']))}: {err['msg']}: send each "
                             "topic as an object with title, description, task_type and candidate_datasets") from None
    if not topics:
        raise ReplyError("the JSON array holds no topics: send at least one topic object in it")
    return topics


class ProposerSettings(StructuredModelSettings):
    hub: HubSettings = Field(default_factory=HubSettings)  # the shared `hf_*` section
    hints: int = Field(20, ge=0, le=200, description="Hub search results shown to the model as hints (0: none)")


class ProposerAgent(LLMAgent):
    role = "proposer"
    consumes = (TopicRequested,)
    produces = (TopicProposed,)
    ack_wait_s = 120.0
    Settings = ProposerSettings
    settings: ProposerSettings

    async def start(self) -> None:
        from catalog import (
            LocalCatalog,  # datasets and pandas: seconds to import, so not at start-up of the CLI
        )
        from catalog.hub import HubCatalog
        from catalog.hub_cache import ResponseCache

        self.kv: KeyValue = await self.ctx.bus.js.create_key_value(bucket=BUCKET, history=1)
        self.catalog = LocalCatalog(self.ctx.data_dir / "catalog")
        await asyncio.to_thread(self.catalog.build_builtin)
        h = self.settings.hub  # hints are optional: one try each, never a retry loop
        self.hub = HubCatalog(h.api_url(), h.viewer_url(), h.token_value() or "", max_retries=0, timeout=15.0,
                              cache=ResponseCache(self.ctx.data_dir / "cache" / "hub", h.cache_ttl_s))

    async def stop(self) -> None:
        if getattr(self, "hub", None) is not None:
            await self.hub.close()
        await super().stop()

    async def work(self, event: Event) -> Sequence[Emit]:
        req = event.payload_as(TopicRequested)
        if req.topic is not None:
            return [Emit(await self.ground(req), key=signature(req.topic))]
        known = await self.known_titles(req.domain)
        # a redelivery (the handler was killed after claiming): the topics claimed the first time, not new ones
        kept = [TopicProposed.model_validate(c["topic"]) for c in known.values()
                if c["by"] == event.id and "topic" in c][:req.count]
        if len(kept) < req.count:
            kept += await self.propose(req, event.id, known, req.count - len(kept))
        return [Emit(t, key=signature(t.title), new_trace=True) for t in kept]

    async def propose(self, req: TopicRequested, request_id: str, known: dict[str, dict], n: int) -> list[TopicProposed]:
        """Ask the model and claim up to n topics new in the domain."""
        topics = await self.ask_topics(req, sorted(known))
        kept: list[TopicProposed] = []
        for topic in topics:
            topic = topic.model_copy(update={"domain": req.domain, "difficulty": req.difficulty})
            if len(kept) < n and topic.title not in known and await self.claim(topic, req.domain, request_id, known):
                kept.append(topic)
        return kept

    async def ground(self, req: TopicRequested) -> TopicProposed:
        """A given topic (injected free text) with the candidate datasets the model names for it."""
        assert req.topic is not None
        first = (await self.ask_topics(req, []))[0]
        return first.model_copy(update={"title": req.topic, "domain": req.domain, "difficulty": req.difficulty,
                                        "task_type": req.task_type or first.task_type})

    async def ask_topics(self, req: TopicRequested, exclude: list[str]) -> list[TopicProposed]:
        words_of = req.topic or req.domain
        prompt = render("propose_topics", domain=req.domain, count=req.count, difficulty=req.difficulty,
                        topic=req.topic, task_type=req.task_type, hints=await self.hints(words_of),
                        catalog=self.catalog_summary(), exclude=exclude, task_types=list(TASK_TYPES))
        messages = [{"role": "system", "content": render("propose_system")}, {"role": "user", "content": prompt}]
        try:
            return await self.ask(messages, "propose_topics", parse_topics, schema="topics")
        except ReplyError as exc:
            raise Poison(f"proposer: model reply unusable: {exc}") from None

    async def hints(self, text: str) -> list[dict]:
        """Hub search results for the text's words (`GET /api/datasets?search=…&sort=downloads`): id, task
        categories, license and the start of the description. None when the Hub does not answer."""
        from catalog.models import CatalogError

        found: dict[str, dict] = {}
        for word in search_words(text)[:4] if self.settings.hints else []:
            try:
                results = await self.hub.search(word, limit=self.settings.hints)
            except CatalogError as exc:
                log.info("hub search gave no hints", search=word, error=str(exc))
                break
            for item in results:
                tags = [str(t) for t in item.get("tags") or []]
                found.setdefault(item["id"], {
                    "id": item["id"], "source": "hub",
                    "task_categories": [t.split(":", 1)[1] for t in tags if t.startswith("task_categories:")],
                    "license": next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None),
                    "description": str(item.get("description") or "")[:160]})
        return list(found.values())[: self.settings.hints]

    def catalog_summary(self) -> list[dict]:
        return [{"id": p.id, "source": p.source, "task_type": p.task_type, "input_columns": p.input_columns[:12],
                 "label_column": p.label_column, "description": (p.description or "")[:160]}
                for p in self.catalog.list()]

    async def known_titles(self, domain: str) -> dict[str, dict]:
        """title -> its claim in the domain: {"title", "by": the request that claimed it, "topic": the payload}."""
        out: dict[str, dict] = {}
        try:
            keys = await self.kv.keys()
        except Exception:  # NoKeysError: nothing proposed yet
            return out
        for key in (k for k in keys if k.startswith(f"{slug(domain)}.")):
            entry = await self.kv.get(key)
            if entry and entry.value:
                value = json.loads(entry.value)
                out[value["title"]] = value
        return out

    async def claim(self, topic: TopicProposed, domain: str, request_id: str, known: dict[str, dict]) -> bool:
        """True when the topic is new in the domain (or was claimed by this same request before)."""
        if any(jaccard(words(topic.title), words(t)) >= NEAR_DUPLICATE for t in known):
            return False
        key = f"{slug(domain)}.{signature(topic.title)}"
        claim = {"title": topic.title, "by": request_id, "topic": topic.model_dump(mode="json")}
        try:
            await self.kv.create(key, json.dumps(claim).encode())
        except KeyWrongLastSequenceError:
            entry = await self.kv.get(key)
            if not entry or json.loads(entry.value or b"{}").get("by") != request_id:
                return False
        known[topic.title] = claim
        return True

"""Thinking and cut-off replies: a model's reasoning (its `reasoning_content` / `reasoning` field or a
`<think>` block) is kept beside the reply, never parsed, never sent back, and exported only on request; a
reply cut off at the length limit is never read, in `ask` (over HTTP, the real openai SDK against a scripted
OpenAI-shaped server) or in a solver episode (the real bwrap sandbox, a scripted model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.llm import Completion
from agents.proposer import parse_topics
from agents.solver.environment import SandboxEnvironment
from agents.solver.loop import Episode, EpisodeLimits
from agents.solver.record import Recorder
from bus import Bus
from domain.tokens import conversation_tokens
from gymforge import sft_format
from prompts import render
from tests.helpers.scripted_model import ScriptedModel as ScriptedReplies
from tests.helpers.scripted_model import bash
from tests.helpers.tasks import ReadyTask
from tests.test_llm import GOOD_TOPICS, ScriptedModel, asking
from tests.test_solver_loop import env, task  # noqa: F401 - the bwrap workspace of a real task

pytestmark = pytest.mark.timeout(300)

DRAFT_TOPICS = """```json
[{"title": "DRAFT: a topic from the thinking", "description": "draft", "task_type": "tabular_classification",
  "candidate_datasets": [{"id": "wine", "source": "builtin", "input_columns": ["alcohol"], "label_column": "class"}]}]
```"""


def body(content: str, finish_reason: str = "stop", **message: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message},
                         "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


# --- ask(): cut-off replies and thinking, over HTTP ----------------------------------------------------


async def test_a_cut_off_reply_is_never_parsed_and_gets_its_own_correction(bus: Bus, tmp_path: Path) -> None:
    question = [{"role": "user", "content": "Propose one topic as a JSON array."}]
    # the cut-off reply holds a complete, parseable array: it must not be taken
    async with ScriptedModel([body(DRAFT_TOPICS, "length"), GOOD_TOPICS]) as srv, \
            asking(bus, tmp_path, srv.url) as agent:
        topics = await agent.ask(question, "propose_topics", parse_topics)
    assert [t.title for t in topics] == ["Classify species on iris"]
    assert len(srv.requests) == 2
    correction = srv.requests[1]["messages"][-1]
    assert correction == {"role": "user", "content": render("cut_off")}
    assert "cut off at the length limit" in correction["content"]


async def test_a_reply_cut_off_every_time_ends_in_a_reply_error_saying_so(bus: Bus, tmp_path: Path) -> None:
    from agents.replies import ReplyError

    async with ScriptedModel([body(GOOD_TOPICS, "length")]) as srv, asking(bus, tmp_path, srv.url) as agent:
        with pytest.raises(ReplyError, match="cut off at the length limit.*still after 2"):
            await agent.ask([{"role": "user", "content": "topics"}], "propose_topics", parse_topics)
    assert len(srv.requests) == 3


@pytest.mark.parametrize("message", [
    {"content": "<think>\nMaybe this one:\n" + DRAFT_TOPICS + "\n</think>\n\n" + GOOD_TOPICS},  # Qwen3, R1
    {"content": "Maybe this one:\n" + DRAFT_TOPICS + "\n</think>\n\n" + GOOD_TOPICS},  # <think> opened in the prompt
    {"content": GOOD_TOPICS, "reasoning_content": "Maybe this one:\n" + DRAFT_TOPICS},  # DeepSeek, vLLM
    {"content": GOOD_TOPICS, "reasoning": "Maybe this one:\n" + DRAFT_TOPICS},  # OpenRouter
], ids=["think-block", "think-closed-only", "reasoning_content", "reasoning"])
async def test_thinking_is_read_apart_and_its_draft_is_not_the_answer(
        bus: Bus, tmp_path: Path, message: dict[str, Any]) -> None:
    content = message.pop("content")
    async with ScriptedModel([body(content, **message)]) as srv, asking(bus, tmp_path, srv.url) as agent:
        reply = await agent.llm.complete([{"role": "user", "content": "topics"}], purpose="propose_topics")
        topics = await agent.ask([{"role": "user", "content": "topics"}], "propose_topics", parse_topics)
    assert "DRAFT" in reply.reasoning and "DRAFT" not in reply.text and "<think>" not in reply.text
    assert [t.title for t in topics] == ["Classify species on iris"]


# --- a solver episode: cut-off replies, reasoning in the record and the SFT export ----------------------


def completion(text: str, *, reasoning: str = "", finish_reason: str = "stop") -> Completion:
    return Completion(text=text, prompt_tokens=100, completion_tokens=20, cost_usd=0.0, latency_s=0.0, retries=0,
                      reasoning=reasoning, finish_reason=finish_reason)


DANGER = "rm -rf data && touch CUT_OFF_RAN"
THINKING = "Let me think. A draft:\n```bash\nrm -rf data\n```\nNo: run the baseline first."


async def test_an_episode_skips_cut_off_replies_and_keeps_reasoning_apart(task: ReadyTask, env: SandboxEnvironment  # noqa: F811
                                                                          ) -> None:
    model = ScriptedReplies([
        completion(bash(DANGER, "Clean up first."), reasoning="cut while", finish_reason="length"),
        completion(bash("python baseline.py", "Run the baseline."), reasoning=THINKING),
        completion(bash("submit", "Submit it.")),
    ])
    rec = Recorder("SYSTEM", "INSTANCE", {"task_id": task.bundle.task_id, "attempt": 0, "metric": task.bundle.metric,
                                          "direction": task.bundle.direction, "baseline_score": task.baseline_score,
                                          "model": "scripted"}, {"seed": 0}, "gymforge:bwrap")
    await Episode(model, env, EpisodeLimits(), rec, "thought_action", {task.bundle.metric: task.baseline_score}).run()
    traj = rec.traj()
    assert traj.info.exit_status == "submitted"
    # the cut-off reply's command never ran
    listing = await env.execute("ls", 10)
    assert "CUT_OFF_RAN" not in listing.stdout and "data" in listing.stdout
    assert [s.action for s in traj.trajectory] == ["python baseline.py", "submit"]
    correction = traj.trajectory[0].extra_info.format_corrections
    assert len(correction) == 1 and "cut off" in correction[0].problem
    assert model.seen[1][-1] == {"role": "user", "content": render("cut_off").rstrip("\n")}
    # the reasoning has fields of its own; it is nowhere else in the record, nor sent back to the model
    first = traj.trajectory[0]
    assert first.extra_info.reasoning == THINKING and traj.trajectory[1].extra_info.reasoning is None
    assistants = [m for m in traj.history if m.role == "assistant"]
    assert assistants[0].reasoning == THINKING and assistants[1].reasoning is None
    dumped = traj.model_dump(mode="json")
    assert "reasoning" not in dumped["trajectory"][1]["extra_info"]
    assert "reasoning" not in dumped["history"][-1]
    for step in dumped["trajectory"]:
        assert "rm -rf data" not in step["response"] + step["thought"] + json.dumps(step["query"])
    for sent in model.seen:
        assert all("reasoning" not in m and "Let me think" not in str(m["content"]) for m in sent)

    dropped = sft_format.conversation(traj, 32_000)
    kept = sft_format.conversation(traj, 32_000, reasoning="keep")
    assert "Let me think" not in json.dumps(dropped.messages)
    with_thinking = [m for m in kept.messages if "reasoning_content" in m]
    assert [m["reasoning_content"] for m in with_thinking] == [THINKING]
    assert with_thinking[0]["role"] == "assistant" and "Let me think" not in with_thinking[0]["content"]
    assert kept.tokens == conversation_tokens(kept.messages) > dropped.tokens
    with pytest.raises(ValueError, match="reasoning must be one of"):
        sft_format.conversation(traj, 32_000, reasoning="maybe")

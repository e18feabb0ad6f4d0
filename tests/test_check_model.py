"""`gymforge check-model` as a subprocess: against the offline teacher (started by the command on a free
port; every role can work, exit 0), against a stand-in provider that thinks aloud, refuses json_schema and
makes no tool calls (the roles still work; a solver in tool_call format cannot: exit 1), against one that
refuses everything and an address where nothing listens (exit 1, one line per role, no traceback), and bad
input (exit 2)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import Result, gymforge
from tests.test_requests import completion, refusal, stand_in

pytestmark = pytest.mark.timeout(120)
ROLES = ["proposer", "coder", "debugger", "solver"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def check_model(tmp_path: Path, *args: str, **env: str) -> Result:
    return await gymforge("check-model", *args, url="nats://127.0.0.1:9", data_dir=tmp_path / "data",
                          env={"GYMFORGE_TEACHER_PORT": str(free_port()), **env})


def one_line_each(r: Result, roles: list[str]) -> list[str]:
    lines = r.out.splitlines()
    assert [line.split(":")[0] for line in lines] == roles
    assert "Traceback" not in r.out + r.err
    return lines


async def test_every_role_can_work_with_the_offline_teacher(tmp_path: Path) -> None:
    r = await check_model(tmp_path, "--json")
    assert r.code == 0, r.out + r.err
    checks = {c["role"]: c for c in json.loads(r.out)}
    assert list(checks) == ROLES
    for c in checks.values():
        assert c["ok"] and c["reachable"] and c["parsed"] and c["model"] == "offline-teacher-rule-based"
        assert c["latency_s"] >= 0 and not c["reasoning"]
    assert checks["proposer"]["structured_output"] == checks["coder"]["structured_output"] == "yes"
    assert checks["solver"]["tool_calls"] is True and checks["debugger"]["tool_calls"] is None
    human = await check_model(tmp_path, "--role", "solver")
    assert human.code == 0 and human.out.startswith("solver: ok: model offline-teacher-rule-based")


def thinking_provider(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A stand-in for a reasoning model's endpoint without structured output or tools: it refuses
    response_format, ignores `tools` and answers the probe's format (teacher/probe.py) with its thinking in
    `reasoning_content`."""
    from teacher.probe import probe_reply

    if "response_format" in body:
        return refusal("response_format json_schema is not supported by this model")
    return 200, completion(probe_reply(body["messages"], None), model="qwen3-8b",
                           reasoning_content="The user wants the probe format. Let me write it.")


async def test_a_provider_without_structured_output_or_tools(tmp_path: Path) -> None:
    async with stand_in(thinking_provider) as srv:
        r = await check_model(tmp_path, OPENAI_BASE_URL=srv.url)
        tool_mode = await check_model(tmp_path, "--role", "solver", OPENAI_BASE_URL=srv.url,
                                      GYMFORGE_SOLVER_ACTION_FORMAT="tool_call")
        mlgym = await check_model(tmp_path, "--role", "solver", OPENAI_BASE_URL=srv.url,
                                  GYMFORGE_SOLVER_INTERFACE="mlgym")
    assert r.code == 0, r.out + r.err
    lines = dict(zip(ROLES, one_line_each(r, ROLES), strict=True))
    assert all(": ok: model qwen3-8b" in line and "reasoning seen" in line for line in lines.values())
    assert "structured output no (refused: the role asks in text)" in lines["proposer"]
    assert "structured output no (refused" in lines["coder"] and "tool calls no" in lines["solver"]
    assert mlgym.code == 0 and mlgym.out.startswith("solver: ok:")  # read by MLGym's own parser
    assert srv.requests[-2]["messages"][0]["content"].count("DISCUSSION") == 1
    assert tool_mode.code == 1
    (line,) = one_line_each(tool_mode, ["solver"])
    assert line.startswith("solver: cannot work:") and "tool calls no" in line


async def test_a_refusing_endpoint_and_an_unreachable_one_exit_1_in_one_line_per_role(tmp_path: Path) -> None:
    async with stand_in(lambda body: refusal("Incorrect API key provided", 401)) as srv:
        refused = await check_model(tmp_path, OPENAI_BASE_URL=srv.url)
    assert refused.code == 1
    for line in one_line_each(refused, ROLES):
        assert ": cannot work: model endpoint refused the request (401)" in line and "Incorrect API key" in line

    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    down = await check_model(tmp_path, "--role", "coder", OPENAI_BASE_URL=nowhere)
    assert down.code == 1
    (line,) = one_line_each(down, ["coder"])
    assert line.startswith("coder: cannot work: model endpoint unreachable after 2 tries: API")
    assert f"Cannot connect to host 127.0.0.1:{nowhere.split(':')[2].split('/')[0]}" in line


async def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = await check_model(tmp_path, "--role", "filter")
    assert r.code == 2 and r.out == "" and r.err.count("\n") == 1 and "invalid choice: 'filter'" in r.err
    bad = await check_model(tmp_path, GYMFORGE_SOLVER_REASONING_EFFORT="max")
    assert bad.code == 2 and bad.err.count("\n") == 1 and "bad setting solver_reasoning_effort" in bad.err

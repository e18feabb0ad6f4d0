"""A stored trajectory (domain.trajectory) -> the `.traj` object SWE-agent 1.x reads. Pure: no I/O.

The store keeps gymforge's own record (typed step state, gymforge's replay settings); `export traj`
writes this instead, so every stored trajectory, from any version, exports in one shape:

- `replay_config` is what `sweagent run-replay` validates as a RunSingleConfig (pydantic, extra keys
  forbidden): `agent` (a default agent: `model.name`, `tools.parse_function.type` thought_action or
  function_calling, the system prompt and the instance as templates), `env` (`deployment`: docker with
  gymforge's sandbox image; `repo`: the workspace the commands ran in, preexisting, not reset) and
  `problem_statement` (`type: text`, `text` = the task instance, `id` = the file's stem). gymforge's
  own settings (interface, action format, seed, limits, ...) go verbatim under
  `problem_statement.extra_fields.gymforge`, the one free-form place RunSingleConfig has.
- a step's `state` holds strings, as SWE-agent's dict[str, str] (`step`, `score` JSON-encoded: "3",
  "0.91", "null"); the typed state stays in its `extra_info.state`, beside gymforge's other extras
  (format corrections, tool call id, model time, reasoning).
- history messages are the solver's, with SWE-agent's agent name (`main`, the only name traj-to-demo
  keeps) and, on tool answers, SWE-agent's `tool_call_ids` beside `tool_call_id`.
- `info`, `trajectory`'s other keys and `environment` are as stored.
"""

from __future__ import annotations

import json
from typing import Any

from domain.trajectory import Trajectory

SWE_AGENT = "main"  # SWE-agent's default agent name: traj-to-demo keeps only its messages
WORKDIR = "/gf/work"  # where the sandbox backends run commands, for trajectories that did not record it
PARSERS = {"thought_action": "thought_action", "tool_call": "function_calling"}  # gymforge -> SWE-agent
RAW_END = "{% endraw %}"


def swe_traj(traj: Trajectory, instance_id: str, image: str) -> dict[str, Any]:
    """The .traj object of `traj`, to be written as `<instance_id>.traj`; `image` is the docker image a
    replay's deployment names."""
    data = traj.model_dump(mode="json")
    data["trajectory"] = [step(d) for d in data["trajectory"]]
    data["history"] = [history_item(m) for m in data["history"]]
    data["replay_config"] = replay_config(traj, instance_id, image)
    return data


def step(dumped: dict[str, Any]) -> dict[str, Any]:
    typed = dumped["state"]
    return {**dumped, "state": {k: json.dumps(v) for k, v in typed.items()},
            "extra_info": {**dumped["extra_info"], "state": typed}}


def history_item(m: dict[str, Any]) -> dict[str, Any]:
    out = {**m, "agent": SWE_AGENT}
    if m["role"] == "tool" and m.get("tool_call_id"):
        out["tool_call_ids"] = [m["tool_call_id"]]
    return out


def action_format(traj: Trajectory) -> str:
    fmt = traj.replay_config.get("action_format")
    if fmt in PARSERS:
        return str(fmt)
    return "tool_call" if any(m.tool_calls for m in traj.history) else "thought_action"


def raw(text: str) -> str:
    """`text` as a Jinja template that renders to itself (SWE-agent renders its templates)."""
    return f"{{% raw %}}{text}{RAW_END}" if RAW_END not in text else text.replace("{", "{{ '{' }}")


def model(traj: Trajectory) -> dict[str, Any]:
    rc, limits = traj.replay_config, traj.replay_config.get("limits") or {}
    out: dict[str, Any] = {"name": str(rc.get("model") or traj.info.model)}
    if isinstance(limits.get("max_cost_usd"), int | float):
        out["per_instance_cost_limit"] = float(limits["max_cost_usd"])
    if isinstance(limits.get("max_steps"), int):
        out["per_instance_call_limit"] = limits["max_steps"]
    return out


def agent(traj: Trajectory) -> dict[str, Any]:
    system = traj.history[0].content if traj.history and traj.history[0].role == "system" else ""
    tools: dict[str, Any] = {"parse_function": {"type": PARSERS[action_format(traj)]}}
    timeout = traj.replay_config.get("command_timeout_s")
    if isinstance(timeout, int | float) and timeout >= 1:
        tools["execution_timeout"] = round(timeout)
    return {"type": "default", "name": SWE_AGENT, "model": model(traj), "tools": tools, "max_requeries": 3,
            "templates": {"system_template": raw(system), "instance_template": "{{problem_statement}}",
                          "next_step_template": "{{observation}}"}}


def replay_config(traj: Trajectory, instance_id: str, image: str) -> dict[str, Any]:
    """A RunSingleConfig's fields (see the module's docstring)."""
    instance = traj.history[1].content if len(traj.history) > 1 else ""
    cwd = str(traj.replay_config.get("cwd") or "")
    cwd = cwd if cwd.startswith("/") and cwd.strip("/") else WORKDIR
    return {
        "agent": agent(traj),
        "env": {"deployment": {"type": "docker", "image": image},
                "repo": {"type": "preexisting", "repo_name": cwd.strip("/"), "reset": False}},
        "problem_statement": {"type": "text", "text": instance, "id": instance_id,
                              "extra_fields": {"gymforge": traj.replay_config}},
    }

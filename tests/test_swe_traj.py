"""The `.traj` export in SWE-agent's shape (gymforge/swe_traj.py): episodes recorded by the solver's own
recorder (SolverAgent.recorder(), the real loop, scripted replies) and an older stored trajectory all
convert to a replay_config that SWE-agent's RunSingleConfig accepts, with string step states and the
typed state kept in extra_info.

SWE-agent is not a dependency: its pydantic models (SWE-agent 1.1.0, SWE-ReX 1.4.0: sweagent/run/
run_single.py, agent/agents.py, agent/models.py, tools/tools.py, environment/, agent/problem_statement.py)
are written down below as the keys each one allows (all forbid extra keys but the templates' and tools').
With GYMFORGE_TEST_SWEAGENT_PYTHON naming an interpreter that has SWE-agent installed, the last test also runs
SWE-agent's own validation and run-replay's action extraction on the exported files."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import jinja2
import pytest

from agents.solver.loop import Episode, EpisodeLimits
from domain.payloads import SolveRequested
from domain.trajectory import Trajectory
from gymforge import config
from gymforge.app import build_agent
from gymforge.swe_traj import raw, swe_traj
from tests.helpers.scripted_model import ScriptedModel, bash, tool_call
from tests.test_export_sft import bundle
from tests.test_trajectory import ScriptedEnvironment, hand_written

IMAGE = "gymforge-sandbox:test"

# --- SWE-agent's models, as the keys they allow ------------------------------------------------------

RUN_SINGLE = {"actions", "agent", "env", "env_var_path", "output_dir", "problem_statement"}
DEFAULT_AGENT = {"action_sampler", "history_processors", "max_requeries", "model", "name", "templates", "tools",
                 "type"}
TEMPLATES = {"command_cancelled_timeout_template", "demonstration_template", "demonstrations",
             "disable_image_processing", "instance_template", "max_observation_length",
             "next_step_no_output_template", "next_step_template", "next_step_truncated_observation_template",
             "put_demos_in_history", "shell_check_error_template", "strategy_template", "system_template"}
TOOLS = {"bundles", "command_docs", "enable_bash_tool", "env_variables", "execution_timeout", "filter",
         "format_error_template", "install_timeout", "max_consecutive_execution_timeouts",
         "multi_line_command_endings", "parse_function", "propagate_env_variables", "registry_variables",
         "reset_commands", "submit_command", "submit_command_end_name", "total_execution_timeout"}
MODEL = {"api_base", "api_key", "api_version", "choose_api_key_by_thread", "completion_kwargs",
         "convert_system_to_user", "custom_tokenizer", "delay", "fallbacks", "litellm_model_registry",
         "max_input_tokens", "max_output_tokens", "name", "per_instance_call_limit", "per_instance_cost_limit",
         "retry", "stop", "temperature", "top_p", "total_cost_limit"}
ENV = {"deployment", "name", "post_startup_command_timeout", "post_startup_commands", "repo"}
DOCKER = {"container_runtime", "docker_args", "image", "platform", "port", "pull", "python_standalone_dir",
          "remove_container", "remove_images", "startup_timeout", "type"}
PREEXISTING = {"base_commit", "repo_name", "reset", "type"}
TEXT_PROBLEM = {"extra_fields", "id", "text", "type"}
PARSERS = {"thought_action", "function_calling"}  # the two gymforge's replies are read with


def check_run_single(rc: dict[str, Any]) -> None:
    """`rc` passes RunSingleConfig's shape: known keys only, the required ones there, with their types."""
    assert set(rc) <= RUN_SINGLE and {"agent", "env", "problem_statement"} <= set(rc)
    agent, env, ps = rc["agent"], rc["env"], rc["problem_statement"]
    assert set(agent) <= DEFAULT_AGENT and agent["type"] == "default" and isinstance(agent["max_requeries"], int)
    assert set(agent["model"]) <= MODEL and isinstance(agent["model"]["name"], str) and agent["model"]["name"]
    assert set(agent["tools"]) <= TOOLS and set(agent["tools"]["parse_function"]) == {"type"}
    assert agent["tools"]["parse_function"]["type"] in PARSERS
    assert all(isinstance(agent["tools"].get(k, 1), int) for k in ("execution_timeout", "total_execution_timeout"))
    assert set(agent["templates"]) <= TEMPLATES and all(isinstance(v, str) for v in agent["templates"].values())
    assert set(env) <= ENV and set(env["deployment"]) <= DOCKER and env["deployment"]["type"] == "docker"
    assert set(env["repo"]) <= PREEXISTING and env["repo"]["type"] == "preexisting" and env["repo"]["repo_name"]
    assert set(ps) <= TEXT_PROBLEM and ps["type"] == "text" and isinstance(ps["text"], str) and ps["id"]
    assert isinstance(ps["extra_fields"], dict)
    json.dumps(rc)  # plain JSON throughout


def check_swe_traj(out: dict[str, Any], stored: dict[str, Any], instance_id: str) -> None:
    """`out` is the stored trajectory in SWE-agent's shape: the replay config above, string states (the typed
    state in extra_info), SWE-agent's agent name, and everything else as stored."""
    assert set(out) == {"environment", "trajectory", "history", "info", "replay_config"}
    assert out["environment"] == stored["environment"] and out["info"] == stored["info"]
    check_run_single(out["replay_config"])
    ps = out["replay_config"]["problem_statement"]
    assert ps["id"] == instance_id and ps["text"] == stored["history"][1]["content"]
    assert ps["extra_fields"] == {"gymforge": stored["replay_config"]}  # gymforge's settings, verbatim
    system = out["replay_config"]["agent"]["templates"]["system_template"]
    assert jinja2.Template(system).render() == stored["history"][0]["content"]  # SWE-agent renders it as Jinja
    assert len(out["trajectory"]) == len(stored["trajectory"])
    for got, was in zip(out["trajectory"], stored["trajectory"], strict=True):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in got["state"].items())  # dict[str, str]
        assert {k: json.loads(v) for k, v in got["state"].items()} == was["state"]
        assert got["extra_info"] == {**was["extra_info"], "state": was["state"]}
        assert {k: v for k, v in got.items() if k not in ("state", "extra_info")} == \
            {k: v for k, v in was.items() if k not in ("state", "extra_info")}
    assert len(out["history"]) == len(stored["history"])
    for got, was in zip(out["history"], stored["history"], strict=True):
        extra = {"tool_call_ids": [was["tool_call_id"]]} if was["role"] == "tool" and was.get("tool_call_id") else {}
        assert got == {**was, "agent": "main", **extra}


# --- episodes as the solver records them -----------------------------------------------------------


def solver_recorder(tmp_path: Path, fmt: str, cwd: str = "/gf/work") -> Any:
    """SolverAgent.recorder() of a solver built from settings, as the role builds it."""
    s = config.load({"data_dir": tmp_path, "solver_action_format": fmt, "solver_max_steps": 6,
                     "solver_model": "qwen2.5-coder-7b"}, environ={})
    agent = build_agent("solver", None, s)  # type: ignore[arg-type]  # no bus: the episode is scripted here
    request = SolveRequested(bundle=bundle("penguins-species"), attempt=2, attempts_total=4, baseline_score=0.81)
    return agent.recorder(request, cwd=cwd)


async def recorded(tmp_path: Path, fmt: str) -> Trajectory:
    rec = solver_recorder(tmp_path, fmt)
    if fmt == "tool_call":
        replies: list[Any] = [("Look.", [tool_call("ls", "c1")]), ("Check.", [tool_call("validate", "c2")]),
                              ("Done.", [tool_call("submit", "c3")])]
    else:
        replies = ["no block at all", bash("ls"), bash("validate"), bash("submit")]
    await Episode(ScriptedModel(replies, repeat_last=False), ScriptedEnvironment([0.9, 0.9]),  # type: ignore[arg-type]
                  EpisodeLimits(max_steps=6), rec, fmt, {"accuracy": 0.81}).run()  # type: ignore[arg-type]
    return rec.traj()


@pytest.mark.parametrize("fmt", ["thought_action", "tool_call"])
async def test_a_recorded_episode_exports_in_swe_agents_shape(fmt: str, tmp_path: Path) -> None:
    traj = await recorded(tmp_path, fmt)
    stored = traj.model_dump(mode="json")
    out = swe_traj(traj, "penguins-species__2", IMAGE)
    check_swe_traj(out, stored, "penguins-species__2")
    rc = out["replay_config"]
    assert rc["agent"]["model"] == {"name": "qwen2.5-coder-7b", "per_instance_cost_limit": 4.0,
                                    "per_instance_call_limit": 6}
    assert rc["agent"]["tools"]["parse_function"]["type"] == {"thought_action": "thought_action",
                                                              "tool_call": "function_calling"}[fmt]
    assert rc["agent"]["tools"]["execution_timeout"] == 25
    assert rc["env"] == {"deployment": {"type": "docker", "image": IMAGE},
                         "repo": {"type": "preexisting", "repo_name": "gf/work", "reset": False}}
    gymforge = rc["problem_statement"]["extra_fields"]["gymforge"]
    assert (gymforge["action_format"], gymforge["seed"], gymforge["cwd"]) == (fmt, 2, "/gf/work")
    assert [s["state"] for s in out["trajectory"]][-2:] == [{"step": "2", "score": "0.9"},
                                                            {"step": "3", "score": "0.9"}]
    assert out["trajectory"][0]["state"]["score"] == "null"
    if fmt == "thought_action":  # the bad reply's correction is still there, as extra data
        assert out["trajectory"][0]["extra_info"]["format_corrections"][0]["reply"] == "no block at all"
    else:  # run-replay replays tool calls only with function_calling, and needs every assistant turn's call
        assert all(m["tool_calls"] for m in out["history"] if m["role"] == "assistant")
        assert [m["tool_call_ids"] for m in out["history"] if m["role"] == "tool"] == [["c1"], ["c2"], ["c3"]]
    assert Trajectory.model_validate(stored) == traj  # the stored record itself is unchanged by the export


def test_an_older_stored_trajectory_exports_in_the_same_shape() -> None:
    stored = hand_written()  # no limits, no model, no cwd in its replay_config; steps counted from 0
    traj = Trajectory.model_validate_json(json.dumps(stored))
    out = swe_traj(traj, "co2-forecast__1", IMAGE)
    check_swe_traj(out, stored, "co2-forecast__1")
    rc = out["replay_config"]
    assert rc["agent"]["model"] == {"name": "teacher"}  # the info's model, no limits to carry
    assert "execution_timeout" not in rc["agent"]["tools"]
    assert rc["env"]["repo"]["repo_name"] == "gf/work"  # where the sandbox backends run commands
    assert out["trajectory"][0]["state"] == {"step": "0", "score": "null"}


def test_the_action_format_of_a_trajectory_that_did_not_record_it_comes_from_its_tool_calls() -> None:
    stored = hand_written()
    stored["replay_config"] = {}
    stored["history"][2]["tool_calls"] = [{"id": "c", "type": "function",
                                           "function": {"name": "bash", "arguments": "{\"command\": \"ls\"}"}}]
    out = swe_traj(Trajectory.model_validate(stored), "x__0", IMAGE)
    assert out["replay_config"]["agent"]["tools"]["parse_function"] == {"type": "function_calling"}
    check_run_single(out["replay_config"])


@pytest.mark.parametrize("prompt", ["Plain.", "Jinja in it: {{ x }} {% if y %} {# z #}",
                                    "An end of raw: {% endraw %} and {{ more }}", "{", "}}{%"])
def test_the_system_prompt_renders_to_itself(prompt: str) -> None:
    assert jinja2.Template(raw(prompt)).render() == prompt
    assert jinja2.Template(raw(prompt)).render(problem_statement="p", observation="o") == prompt


def test_a_workspace_that_was_never_opened_falls_back_to_the_sandbox_workdir(tmp_path: Path) -> None:
    rec = solver_recorder(tmp_path, "thought_action", cwd="n/a")
    rec.finish("exit_error", "the workspace could not be prepared: boom", submitted=False)
    out = swe_traj(rec.traj(), "penguins-species__2", IMAGE)
    check_run_single(out["replay_config"])
    assert out["replay_config"]["env"]["repo"]["repo_name"] == "gf/work" and out["trajectory"] == []


# --- SWE-agent itself, where it is installed --------------------------------------------------------

VALIDATE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from sweagent.run.run_replay import RunReplay
    from sweagent.run.run_single import RunSingleConfig
    for path in sys.argv[1:]:
        data = json.loads(Path(path).read_text())
        config = RunSingleConfig.model_validate(data["replay_config"])
        replay = RunReplay(traj_path=Path(path), deployment=None, output_dir=Path(path).parent / "replay")
        replay._create_actions_file()
        actions = json.loads(replay._replay_action_trajs_path.read_text())[Path(path).stem]
        print(json.dumps({"id": config.problem_statement.id, "parser": config.agent.tools.parse_function.type,
                          "actions": len(actions)}))
""")


async def test_swe_agent_validates_and_replays_the_export(tmp_path: Path) -> None:
    python = os.environ.get("GYMFORGE_TEST_SWEAGENT_PYTHON")
    if not python:
        pytest.skip("GYMFORGE_TEST_SWEAGENT_PYTHON names no interpreter with SWE-agent installed")
    paths = []
    for fmt in ("thought_action", "tool_call"):
        traj = await recorded(tmp_path / fmt, fmt)
        path = tmp_path / f"penguins-{fmt}__2.traj"
        path.write_text(json.dumps(swe_traj(traj, path.stem, IMAGE), indent=2))
        paths.append(path)
    old = tmp_path / "co2-forecast__1.traj"
    old.write_text(json.dumps(swe_traj(Trajectory.model_validate(hand_written()), old.stem, IMAGE)))
    r = await asyncio.to_thread(subprocess.run, [python, "-c", VALIDATE, *map(str, [*paths, old])],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    got = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert got == [{"id": "penguins-thought_action__2", "parser": "thought_action", "actions": 3},
                   {"id": "penguins-tool_call__2", "parser": "function_calling", "actions": 3},
                   {"id": "co2-forecast__1", "parser": "thought_action", "actions": 1}]

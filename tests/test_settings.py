"""Settings reach the role that reads them (one test per role, from a TOML file or the environment), bad
keys and values are one-line errors naming the key, and the role declarations are the one source of the
registry, the graph and the configuration's keys."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agents.roles import MODEL_ROLES, ROLES, consumed_by_workers
from agents.runtime import AgentRunner
from bus import Bus
from domain.payloads import EVENTS, TopicProposed, TopicRequested
from gymforge import config
from gymforge.app import build_agent
from gymforge.errors import UserError
from sandbox import backend_for

ROOT = Path(__file__).resolve().parents[1]


def settings_from(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> config.Settings:
    path = tmp_path / "gymforge.toml"
    path.write_text(toml)
    return config.load({"data_dir": tmp_path / "data"}, config_file=path, environ=env or {})


# --- one per role: a value from the file or the environment reaches the agent that reads it --------------


async def test_proposer_concurrency_from_a_role_table(bus: Bus, tmp_path: Path) -> None:
    s = settings_from(tmp_path, "[proposer]\nconcurrency = 3\n")
    runner = AgentRunner(build_agent("proposer", bus, s))
    assert runner.consumer.concurrency == 3 and runner.consumer.spec.max_ack_pending == 1000


async def test_verifier_limits_and_hub_from_file_and_environment(bus: Bus, tmp_path: Path) -> None:
    s = settings_from(tmp_path, 'verifier_allowed_licenses = ["mit", "cc-by-4.0"]\nhf_endpoint = "http://127.0.0.1:9"\n',
                      {"GYMFORGE_VERIFIER_MIN_ROWS": "123", "HF_TOKEN": "hf_abcdefabcdefabcdefabcdef",
                       "GYMFORGE_HF_CACHE_TTL_S": "60", "GYMFORGE_HF_MAX_RETRIES": "1"})
    agent = build_agent("verifier", bus, s)
    assert agent.settings.min_rows == 123 and agent.settings.allowed_licenses == ["mit", "cc-by-4.0"]
    hub = agent.hub_catalog()  # the client the verifier talks to the Hub with
    try:
        assert hub.endpoint == "http://127.0.0.1:9" and hub.token == "hf_abcdefabcdefabcdefabcdef"
        assert hub.cache is not None and hub.cache.ttl_s == 60 and hub.max_retries == 1
        assert hub.cache.root == s.data_dir / "cache" / "hub"
    finally:
        await hub.close()


async def test_coder_concurrency_from_the_environment(bus: Bus, tmp_path: Path) -> None:
    s = settings_from(tmp_path, "", {"GYMFORGE_CODER_CONCURRENCY": "5"})
    assert AgentRunner(build_agent("coder", bus, s)).consumer.concurrency == 5


async def test_debugger_rounds_attempts_and_sandbox_limits(bus: Bus, tmp_path: Path) -> None:
    s = settings_from(tmp_path, "attempts = 2\ndebug_rounds = 5\n[sandbox]\nmemory_mb = 96\npids = 64\n")
    agent = build_agent("debugger", bus, s)
    assert (agent.attempts, agent.max_rounds) == (2, 5)
    limits = agent.settings.sandbox.limits(30.0)
    assert (limits.memory_bytes, limits.pids, limits.wall_time_s) == (96 * 2**20, 64, 30.0)


@pytest.mark.skipif(sys.platform != "linux", reason="bwrap is Linux-only")
async def test_the_sandbox_memory_setting_is_enforced_in_the_session(tmp_path: Path) -> None:
    s = settings_from(tmp_path, "sandbox_memory_mb = 96\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    async with await backend_for(s.sandbox).open(ws, s.sandbox.limits()) as session:
        small = await session.exec(["python", "-c", "x = bytearray(16 * 2**20); print('ok')"])
        big = await session.exec(["python", "-c", "x = bytearray(400 * 2**20); print('ok')"])
    assert small.ok and small.stdout.strip() == "ok"
    assert not big.ok and "ok" not in big.stdout


async def test_solver_limits_and_action_format(bus: Bus, tmp_path: Path) -> None:
    s = settings_from(tmp_path, "[solver]\nmax_steps = 7\ncommand_timeout_s = 9.5\n",
                      {"GYMFORGE_SOLVER_ACTION_FORMAT": "tool_call"})
    agent = build_agent("solver", bus, s)
    try:
        assert agent.limits.max_steps == 7 and agent.command_timeout_s == 9.5 and agent.action_format == "tool_call"
        assert agent.limits.max_cost_usd == config.load(environ={}).role("solver").max_cost_usd  # the default
    finally:
        await agent.stop()


async def test_filter_mode_and_token_limit(bus: Bus, tmp_path: Path) -> None:
    s = settings_from(tmp_path, 'filter_mode = "any"\n', {"GYMFORGE_FILTER_MAX_TOKENS": "1000"})
    agent = build_agent("filter", bus, s)
    assert (agent.mode, agent.max_tokens) == ("any", 1000)


async def test_sink_concurrency_and_store(bus: Bus, tmp_path: Path) -> None:
    s = settings_from(tmp_path, "sink_concurrency = 8\n")
    agent = build_agent("sink", bus, s)
    assert AgentRunner(agent).consumer.concurrency == 8 and agent.db_path == s.db_path


async def test_ack_wait_from_the_environment_reaches_every_role(bus: Bus, tmp_path: Path) -> None:
    s = settings_from(tmp_path, "", {"GYMFORGE_ACK_WAIT_S": "7"})
    for role in ROLES:
        agent = build_agent(role, bus, s)
        assert AgentRunner(agent).consumer.spec.ack_wait_s == 7
        await agent.stop()


# --- bad keys and values: one line naming the key ------------------------------------------------------


@pytest.mark.parametrize(("toml", "env", "message"), [
    ("solver_max_step = 3\n", {}, "unknown setting 'solver_max_step' in config file .*: did you mean solver_max_steps?"),
    ("[solver]\nmax_step = 3\n", {}, "unknown setting 'solver.max_step' in config file .*: did you mean"),
    ("colour = 'blue'\n", {}, "unknown setting 'colour' in config file .*`gymforge settings` lists them"),
    ("[sandbox]\nmemory_mb = 'lots'\n", {}, "bad setting sandbox_memory_mb from config file .*: Input should be a valid"),
    ("attempts = 0\n", {}, "bad setting attempts from config file .*greater than or equal to 1"),
    ("", {"GYMFORGE_SOLVER_MAX_STEPS": "many"}, r"bad setting solver_max_steps \(GYMFORGE_SOLVER_MAX_STEPS\) from environment"),
    ("", {"GYMFORGE_FILTER_MODE": "best"}, r"bad setting filter_mode \(GYMFORGE_FILTER_MODE\) from environment: Input should be 'beat'"),
    ("", {"GYMFORGE_SOLVER_MAX_STEP": "3"}, "unknown setting 'GYMFORGE_SOLVER_MAX_STEP' in the environment: did you mean GYMFORGE_SOLVER_MAX_STEPS"),
])
def test_unknown_or_mistyped_keys_are_one_line_errors(tmp_path: Path, toml: str, env: dict[str, str],
                                                      message: str) -> None:
    with pytest.raises(UserError, match=message) as e:
        settings_from(tmp_path, toml, env)
    assert "\n" not in str(e.value)


def test_an_unknown_flag_key_is_refused() -> None:
    with pytest.raises(UserError, match="unknown setting 'debug_round' in flags: did you mean debug_rounds?"):
        config.load({"debug_round": 2}, environ={})


def test_other_programs_variables_are_left_alone() -> None:
    s = config.load(environ={"GYMFORGE_TEST_RUN": "1", "GYMFORGE_CONFIG_DIR": "x", "GYMFORGE_ATTACK_SECRET": "y"})
    assert s.role("solver").max_steps == config.Settings().role("solver").max_steps


def test_the_command_line_says_it_in_one_line_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "gymforge.toml").write_text("[filter]\nmod = 'any'\n")
    proc = subprocess.run([sys.executable, "-m", "gymforge.cli", "settings"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "unknown setting 'filter.mod'" in proc.stderr
    assert "did you mean" in proc.stderr and "Traceback" not in proc.stderr


def test_settings_lists_every_key_with_its_value(tmp_path: Path) -> None:
    (tmp_path / "gymforge.toml").write_text("solver_max_steps = 11\n")
    proc = subprocess.run([sys.executable, "-m", "gymforge.cli", "settings", "--section", "solver"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-x"})
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert set(lines) == {k.name for k in config.KEYS.values() if k.section == "solver"}
    assert lines["solver_max_steps"].split()[1] == "11"
    core = subprocess.run([sys.executable, "-m", "gymforge.cli", "settings", "--json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-secret-x", "HF_TOKEN": "hf_secret_y"})
    rows = {r["key"]: r for r in json.loads(core.stdout)}
    assert "secret" not in core.stdout and rows["openai_api_key"]["value"] == rows["hf_token"]["value"] == "***"
    assert rows["hf_token"]["env"] == "GYMFORGE_HF_TOKEN | HF_TOKEN" and rows["sandbox"]["section"] == "sandbox"


# --- the declarations are the one source -----------------------------------------------------------------


def test_registry_and_model_roles_come_from_the_declarations() -> None:
    assert list(ROLES) == ["proposer", "verifier", "coder", "debugger", "solver", "filter", "sink"]
    assert {"proposer", "coder", "debugger", "solver"} == MODEL_ROLES
    assert consumed_by_workers() == {"topic.requested", "topic.proposed", "dataset.verified", "task.drafted",
                                     "solve.requested", "trajectory.completed"}


def test_the_graph_is_closed() -> None:
    """Every event a worker consumes is produced by a role or injected by the CLI; every event produced is
    consumed by a worker or is an outcome the store records; no role both lacks inputs and outputs."""
    injected = {TopicRequested, TopicProposed}  # `gymforge inject seed|topic`
    produced = {p for cls in ROLES.values() for p in cls.produces}
    consumed = {p for cls in ROLES.values() for p in cls.consumes}
    assert consumed <= produced | injected
    outcomes = produced - consumed
    assert {p.event_type for p in outcomes} == {"dataset.rejected", "task.validated", "task.rejected",
                                                "trajectory.accepted", "trajectory.rejected", "task.graded"}
    assert produced | consumed <= set(EVENTS)


def test_every_key_is_in_the_readme() -> None:
    text = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`([a-z0-9_]+)`", text))
    missing = [k for k in config.KEYS if k not in documented and not _covered_by_pattern(k, text)]
    assert not missing, f"settings missing from README.md's configuration table: {missing}"


def _covered_by_pattern(key: str, text: str) -> bool:
    """The README may document a family at once: `<role>_concurrency`, `nats_tls_*`."""
    if key.endswith("_concurrency") and key.split("_")[0] in ROLES and "`<role>_concurrency`" in text:
        return True
    return any(key.startswith(prefix) for prefix in re.findall(r"`([a-z0-9_]+)_\*`", text))

"""`gymforge sandbox …` through its argparse registration, on a fresh parser, with the bwrap backend."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from gymforge import config
from gymforge.errors import UserError
from gymforge.sandbox_cli import parse_size, register
from sandbox.gpu import host_gpus

pytestmark = pytest.mark.skipif(not shutil.which("bwrap"), reason="bwrap not installed: apt-get install bubblewrap")


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gymforge")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.settings = config.load()  # as gymforge.cli.main does
    return args.func(args)


def test_exec_passes_output_and_exit_code(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = run(["sandbox", "exec", "--workspace", str(tmp_path), "--", "echo out; echo err >&2; touch made; exit 7"])
    out, err = capsys.readouterr()
    assert (code, out, err) == (7, "out\n", "err\n")
    assert (tmp_path / "made").exists()
    assert run(["sandbox", "exec", "--", "python", "-c", "import sys; print(sys.argv[1:])", "a b", "c"]) == 0
    assert capsys.readouterr().out == "['a b', 'c']\n"


def test_exec_says_why_it_was_killed(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sandbox", "exec", "--timeout", "0.5", "--", "sleep 30"]) == 124
    assert capsys.readouterr().err.strip().splitlines()[-1] == "sandbox: killed: timed out after 0.5s"
    code = run(["sandbox", "exec", "--memory", "96M", "--", "python", "-c", "x = bytearray(400 * 2**20)"])
    assert code != 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("sandbox: killed") and "memory" in last


def test_exec_takes_the_limits_a_flag_leaves_out_from_the_settings(capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GYMFORGE_SANDBOX_MEMORY_MB", "96")
    monkeypatch.setenv("GYMFORGE_SANDBOX_COMMAND_TIMEOUT_S", "0.5")
    assert run(["sandbox", "exec", "--", "sleep 30"]) == 124
    assert capsys.readouterr().err.strip().splitlines()[-1] == "sandbox: killed: timed out after 0.5s"
    assert run(["sandbox", "exec", "--timeout", "20", "--", "python", "-c", "x = bytearray(400 * 2**20)"]) != 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == "sandbox: killed: out of memory (limit 96 MiB)"
    assert run(["sandbox", "exec", "--timeout", "20", "--", "python", "-c", "x = bytearray(16 * 2**20)"]) == 0


def test_user_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GYMFORGE_SANDBOX_ALLOW_PROCESS", raising=False)
    with pytest.raises(UserError, match="GYMFORGE_SANDBOX_ALLOW_PROCESS=1"):
        run(["sandbox", "exec", "--backend", "process", "--", "true"])
    with pytest.raises(UserError, match="not a directory"):
        run(["sandbox", "exec", "--workspace", str(tmp_path / "missing"), "--", "true"])
    with pytest.raises(UserError, match="no command"):
        run(["sandbox", "exec", "--"])
    with pytest.raises(UserError, match="512M"):
        run(["sandbox", "exec", "--memory", "lots", "--", "true"])
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    with pytest.raises(UserError, match="podman-service") as e:
        run(["sandbox", "build-image"])
    assert "\n" not in str(e.value)


def test_check_reports_everything_contained(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sandbox", "check", "--backend", "bwrap", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["backend"] == "bwrap"
    names = " ".join(p["name"] for p in report["probes"])
    for word in ("loopback", "DNS", "write outside", "planted", "env", "memory", "fork", "timeout", "stdout"):
        assert word in names
    assert set(report["enforcement"]) == {"memory", "pids", "cpu"}
    seen = host_gpus()  # none on these machines: no nvidia-smi, no /dev/nvidia[0-9]*
    assert report["gpus"] == {"count": seen.count, "source": seen.source, "devices": list(seen.devices)}
    runtime = report["runtime"]  # the default task runtime, imported inside the sandbox
    assert runtime["name"] == "sklearn" and not runtime["missing"] and runtime["threads"] == "1"
    assert set(runtime["versions"]) == {"numpy", "pandas", "sklearn", "statsmodels", "pyarrow", "datasets"}


def test_check_imports_the_torch_runtime_inside_the_sandbox(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GYMFORGE_TASK_RUNTIME", "torch")
    assert run(["sandbox", "check", "--backend", "bwrap"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  runtime ")]
    assert line.startswith("  runtime    torch: numpy ") and ", torch 2.13.0" in line and line.endswith("(1 thread)")


def test_check_flags_a_backend_without_isolation(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GYMFORGE_SANDBOX_ALLOW_PROCESS", "1")
    assert run(["sandbox", "check", "--backend", "process"]) == 1
    out = capsys.readouterr().out
    assert "ESCAPED" in out and "NOT all contained" in out
    assert "contained  env: host variables scrubbed" in out
    assert f"\n  gpus       {host_gpus().describe()}\n" in out


def test_parse_size() -> None:
    assert parse_size("512M") == 512 * 2**20
    assert parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("4096") == 4096

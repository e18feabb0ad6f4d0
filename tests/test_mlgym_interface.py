"""The solver's mlgym interface (MLGym's default agent: its prompts, DISCUSSION + one command, SWE-agent's
file viewer and editor): each command on fixture files (the implementation that runs in the sandbox, called
directly), then the same commands through the shell functions in a real bwrap sandbox, MLGym's reply
format, and an episode of the real solver agent against the offline teacher (rule-based, over HTTP with the
openai SDK) that the filter accepts and `gymforge export sft` turns into a training example."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents.runtime import AgentRunner, Supervisor
from agents.solver import mlgym_tools as tools
from agents.solver.actions import FormatError, parse_discussion
from agents.solver.environment import SandboxEnvironment
from agents.solver.loop import NoSubmission, Output, Scored
from agents.solver.mlgym import MlgymEnvironment, MlgymInterface, MlgymShell, guard, mlgym_episode
from agents.taskrun import Workspace
from bus import Bus, EmbeddedNats, make_envelope
from gymforge import config
from gymforge.app import build_agent
from prompts import render
from sandbox import get_backend
from teacher.policy import TeacherConfig
from teacher.server import TeacherServer
from teacher.solve import is_mlgym, solve_reply
from tests.helpers.cli import gymforge
from tests.helpers.tasks import ReadyTask, build_task
from tests.test_export_sft import OFFLINE
from tests.test_runtime import wait_until_count
from tests.test_tasks_pipeline import rows
from tests.test_teacher_solve import FACTS, SOURCE

UPDATED = tools.UPDATED


def run(command: str, *args: str, state: tools.State, text: str = "") -> list[str]:
    state.out = []
    tools.run(state, command, list(args), text)
    return state.out


def numbered(path: Path, n: int) -> Path:
    path.write_text("".join(f"line {i}\n" for i in range(1, n + 1)))
    return path


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- the viewer ------------------------------------------------------------------------------------------


def test_open_shows_the_header_and_a_window_of_numbered_lines(ws: Path) -> None:
    big = numbered(ws / "big.txt", 2500)
    s = tools.State()
    out = run("open", "big.txt", state=s)
    assert out[0] == f"[File: {big} (2500 lines total)]"
    assert out[1:3] == ["1:line 1", "2:line 2"] and out[1000] == "1000:line 1000"
    assert out[-1] == "(1500 more lines below)" and len(out) == 1002 and s.file == str(big) and s.line == 500
    # with a line number, a file over 20000 characters is refused (as MLGym does)
    assert run("open", "big.txt", "1500", state=s) == [
        "The file is larger than 20000 characters, please use 'head -n NUM_LINES' to open it"]
    # a line number puts that line a sixth of the window from the top
    (ws / "short.txt").write_text("".join(f"{i}\n" for i in range(1, 2501)))
    out = run("open", "short.txt", "1500", state=s)
    assert out[1] == "(1334 more lines above)" and out[2] == "1335:1335" and out[167] == "1500:1500"
    assert out[-2] == "2334:2334" and out[-1] == "(166 more lines below)" and s.line == 1834


def test_open_refuses_what_it_cannot_show(ws: Path) -> None:
    numbered(ws / "a.txt", 3)
    (ws / "d").mkdir()
    (ws / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    s = tools.State()
    assert run("open", "nope.py", state=s) == ["File nope.py not found"] and s.file == ""
    assert run("open", "d", state=s) == \
        ["Error: d is a directory. You can only open files. Use cd or ls to navigate directories."]
    assert run("open", "pic.png", state=s) == \
        ["Error: pic.png is an image file. Current environment does not support image viewing."]
    assert run("open", state=s) == ['Usage: open "<file>"']
    assert run("open", "a.txt", "x", state=s) == ['Usage: open "<file>" [<line_number>]',
                                                   "Error: <line_number> must be a number"]
    out = run("open", "a.txt", "9", state=s)
    assert out[:2] == ["Warning: <line_number> (9) is greater than the number of lines in the file (3)",
                       "Warning: Setting <line_number> to 3"] and out[-1] == "3:line 3"


def test_goto_moves_the_window_and_refuses_a_line_past_the_end(ws: Path) -> None:
    numbered(ws / "big.txt", 2500)
    s = tools.State()
    assert run("goto", "5", state=s) == ["No file open. Use the open command first."]
    run("open", "big.txt", state=s)
    assert run("goto", "2501", state=s) == ["Error: <line> must be less than or equal to 2500"] and s.line == 500
    assert run("goto", "1", "2", state=s) == ["goto allows only one line number at a time."]
    assert run("goto", "x", state=s) == ["Usage: goto <line>", "Error: <line> must be a number"]
    out = run("goto", "2500", state=s)
    assert out[1] == "(1500 more lines above)" and out[-1] == "2500:line 2500" and s.line == 2000


def test_scrolling_stops_at_the_top_and_the_bottom_and_warns_after_three(ws: Path) -> None:
    numbered(ws / "big.txt", 2500)
    s = tools.State()
    run("open", "big.txt", state=s)
    out = run("scroll_up", state=s)  # already at the top: the same window
    assert out[1] == "1:line 1" and "more lines above" not in out[1] and s.line == 500
    out = run("scroll_down", state=s)  # 1000 - 2 lines down: two lines stay on screen
    assert out[1] == "(998 more lines above)" and out[2] == "999:line 999" and s.line == 1498
    s.last_action = "scroll_down"
    out = run("scroll_down", state=s)  # the last window ends at the last line
    assert out[1] == "(1500 more lines above)" and out[-1] == "2500:line 2500" and s.line == 2000
    out = run("scroll_down", state=s)  # at the bottom: the same window, and the third scroll in a row
    assert out[1] == "(1500 more lines above)" and "2500:line 2500" in out and s.scroll_count == 3
    assert "WARNING: Scrolling many times in a row is very inefficient." in out
    s.last_action = "ls"
    assert "WARNING: Scrolling many times in a row is very inefficient." not in run("scroll_up", state=s)


def test_a_file_that_vanished_is_one_line_on_stderr(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    numbered(ws / "a.txt", 3)
    s = tools.State()
    run("open", "a.txt", state=s)
    (ws / "a.txt").unlink()
    s.out = []
    assert tools.run(s, "goto", ["2"]) == 1 and s.out == []
    assert capsys.readouterr().err == f"goto: {ws / 'a.txt'}: No such file or directory\n"


def test_create_makes_and_opens_a_file_but_not_over_an_existing_one(ws: Path) -> None:
    numbered(ws / "a.txt", 3)
    s = tools.State()
    assert run("create", "new.py", state=s) == [f"[File: {ws / 'new.py'} (1 lines total)]", "1:"]
    assert (ws / "new.py").read_text() == "\n" and s.file == str(ws / "new.py")
    out = run("create", "a.txt", state=s)
    assert out == ["Error: File 'a.txt' already exists.", f"[File: {ws / 'a.txt'} (3 lines total)]",
                   "1:line 1", "2:line 2", "3:line 3"]
    assert (ws / "a.txt").read_text() == "line 1\nline 2\nline 3\n" and s.file == str(ws / "a.txt")


# --- the editor ------------------------------------------------------------------------------------------


def test_edit_replaces_a_line_range_and_shows_the_new_lines_and_the_total(ws: Path) -> None:
    f = numbered(ws / "a.txt", 10)
    s = tools.State()
    assert run("edit", "3:5", state=s, text="x\n") == ["No file open. Use the `open` command first."]
    run("open", "a.txt", state=s)
    out = run("edit", "3:5", state=s, text="new 1\nnew 2\nnew 3\nnew 4\nnew 5\n")
    assert out[0] == f"[File: {f} (12 lines total)]"
    assert out[1:9] == ["1:line 1", "2:line 2", "3:new 1", "4:new 2", "5:new 3", "6:new 4", "7:new 5", "8:line 6"]
    assert out[12] == "12:line 10" and out[-1] == UPDATED
    assert f.read_text().splitlines()[2:8] == ["new 1", "new 2", "new 3", "new 4", "new 5", "line 6"]
    # indentation is kept as written; no text deletes the lines
    run("edit", "1:1", state=s, text="    indented\n")
    run("edit", "2:7", state=s, text="")
    assert f.read_text() == "    indented\nline 6\nline 7\nline 8\nline 9\nline 10\n"


def test_edit_refuses_bad_line_ranges_and_keeps_the_file(ws: Path) -> None:
    f = numbered(ws / "a.txt", 5)
    s = tools.State()
    run("open", "a.txt", state=s)
    usage = "Usage: edit <start_line>:<end_line>"
    assert run("edit", "3", state=s, text="x\n") == [usage]
    assert run("edit", "a:3", state=s, text="x\n") == [usage, "Error: start_line must be a number"]
    assert run("edit", "2:b", state=s, text="x\n") == [usage, "Error: end_line must be a number"]
    bad = [usage, "Error: start_line must be at least 1 and end_line at least start_line - 1"]
    assert run("edit", "0:2", state=s, text="x\n") == bad and run("edit", "5:2", state=s, text="x\n") == bad
    assert f.read_text() == "line 1\nline 2\nline 3\nline 4\nline 5\n"
    run("edit", "3:2", state=s, text="before 3\n")  # start:start-1 replaces nothing: the text goes before line 3
    assert f.read_text().splitlines()[1:4] == ["line 2", "before 3", "line 3"]


def test_an_edit_that_breaks_python_is_not_applied(ws: Path) -> None:
    f = ws / "train.py"
    f.write_text("def main():\n    x = 1\n    return x\n")
    s = tools.State()
    run("open", "train.py", state=s)
    out = run("edit", "2:2", state=s, text="    x = (\n")
    assert out[0].startswith("Your proposed edit has introduced new syntax error(s).")
    assert out[2:4] == ["ERRORS:", "- E999 SyntaxError: '(' was never closed"]
    assert "This is how your edit would have looked if applied" in out and "2:    x = (" in out
    assert "This is the original code before your edit" in out and "2:    x = 1" in out
    assert out[-3] == "Your changes have NOT been applied. Please fix your edit command and try again."
    assert f.read_text() == "def main():\n    x = 1\n    return x\n"
    # the same edit in a file that is not python is applied
    g = ws / "notes.txt"
    g.write_text("a\nb\n")
    run("open", "notes.txt", state=s)
    assert run("edit", "2:2", state=s, text="x = (\n")[-1] == UPDATED and g.read_text() == "a\nx = (\n"


def test_insert_goes_after_the_line_and_past_the_end_appends(ws: Path) -> None:
    f = numbered(ws / "a.txt", 3)
    s = tools.State()
    run("open", "a.txt", state=s)
    out = run("insert", "99", state=s, text="tail 1\ntail 2\n")
    assert out[0] == f"[File: {f} (5 lines total)]" and out[4:6] == ["4:tail 1", "5:tail 2"] and out[-1] == UPDATED
    run("insert", "0", state=s, text="head\n")
    run("insert", "2", state=s, text="middle\n")
    assert f.read_text() == "head\nline 1\nmiddle\nline 2\nline 3\ntail 1\ntail 2\n"
    assert run("insert", "x", state=s, text="y\n") == ["Usage: insert <line_number>",
                                                         "Error: line_number must be a number"]
    py = ws / "t.py"
    py.write_text("x = 1\n")
    run("open", "t.py", state=s)
    out = run("insert", "1", state=s, text="  y = 2\n")
    assert out[0].startswith("Your proposed insertion has introduced new syntax error(s).")
    assert out[3] == "- E999 IndentationError: unexpected indent" and py.read_text() == "x = 1\n"
    assert out[-3] == "Your changes have NOT been applied. Please fix your insert command and try again."


# --- search ----------------------------------------------------------------------------------------------


def test_search_dir_counts_matches_per_file_and_says_when_there_are_none(ws: Path) -> None:
    (ws / "src").mkdir()
    (ws / "src" / "a.py").write_text("LR = 0.1\nlr = LR\n# LR again\n")
    (ws / "b.txt").write_text("no rate here\nLR\n")
    (ws / ".hidden").write_text("LR\n")
    s = tools.State()
    assert run("search_dir", "LR", state=s) == [
        f'Found 4 matches for "LR" in {ws}:', f"{ws / 'b.txt'} (1 matches)", f"{ws / 'src' / 'a.py'} (3 matches)",
        f'End of matches for "LR" in {ws}']
    assert run("search_dir", "momentum", state=s) == [f'No matches found for "momentum" in {ws}']
    assert run("search_dir", "LR", "nope", state=s) == ["Directory nope not found"]
    assert run("search_dir", state=s) == ["Usage: search_dir <search_term> [<dir>]"]


def test_search_file_lists_the_matching_lines(ws: Path) -> None:
    f = ws / "a.py"
    f.write_text("LR = 0.1\nlr = LR\nepochs = 3\n")
    s = tools.State()
    assert run("search_file", "LR", state=s) == ["No file open. Use the open command first."]
    assert run("search_file", "LR", "a.py", state=s) == [
        f'Found 2 matches for "LR" in {f}:', "Line 1:LR = 0.1", "Line 2:lr = LR", f'End of matches for "LR" in {f}']
    run("open", "a.py", state=s)
    assert run("search_file", "momentum", state=s) == [f'No matches found for "momentum" in {f}']
    assert run("search_file", "LR", "b.py", state=s) == [
        "Usage: search_file <search_term> [<file>]", "Error: File name b.py not found. Please provide a valid file name."]


def test_find_file_finds_by_name_pattern(ws: Path) -> None:
    (ws / "data").mkdir()
    (ws / "data" / "train.csv").write_text("x\n")
    (ws / "data" / "test.csv").write_text("x\n")
    s = tools.State()
    assert run("find_file", "*.csv", state=s) == [f'Found 2 matches for "*.csv" in {ws}:',
                                                  str(ws / "data" / "test.csv"), str(ws / "data" / "train.csv")]
    assert run("find_file", "model.pt", "data", state=s) == [f'No matches found for "model.pt" in {ws / "data"}']


# --- in the sandbox: the shell functions, the heredoc, the state kept between commands ---------------------


def test_guard_turns_edit_and_insert_bodies_into_heredocs() -> None:
    command = "edit 2:3\n    x = 1\nend_of_edit\ninsert 5\ny\nend_of_insert  \n"
    assert guard(command) == ("edit 2:3 << 'end_of_edit'\n    x = 1\nend_of_edit\n"
                              "insert 5 << 'end_of_insert'\ny\nend_of_insert\n")
    assert guard("edit_config 1\nend_of_edit") == "edit_config 1\nend_of_edit"  # not the edit command
    assert guard("ls -l") == "ls -l"


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[tuple[MlgymEnvironment, MlgymInterface, Path]]:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "train.py").write_text("import sys\n\nLR = 0.1\nEPOCHS = 3\nprint(LR, EPOCHS)\n")
    session = await get_backend("bwrap").open(root)
    try:
        inner = SandboxEnvironment(Workspace(session, None, tmp_path / "hidden"))  # type: ignore[arg-type]
        env, ui = mlgym_episode(inner, session.workdir, max_steps=10)
        yield env, ui, root
    finally:
        await session.close()


async def test_the_commands_run_in_the_sandbox_and_keep_their_state(
        sandbox: tuple[MlgymEnvironment, MlgymInterface, Path]) -> None:
    env, ui, root = sandbox

    async def step(command: str, n: int) -> str:
        out = await env.execute(command, 30)
        assert not out.timed_out
        return ui.observation(ui.output(out, 10_000), n)

    text = await step('open "train.py"', 1)
    assert text.startswith("[File: /gf/work/train.py (5 lines total)]\n1:import sys\n2:\n3:LR = 0.1\n")
    assert text.endswith("(Current Step: 1, Remaining Steps: 9)\n(Open file: /gf/work/train.py)\n"
                         "(Current directory: /gf/work)\nbash-$")
    text = await step("edit 3:4\nLR = 0.05\nEPOCHS = 10\nMOMENTUM = 0.9\nend_of_edit", 2)  # the open file, remembered
    assert "[File: /gf/work/train.py (6 lines total)]" in text and "5:MOMENTUM = 0.9" in text and UPDATED in text
    assert (root / "train.py").read_text() == "import sys\n\nLR = 0.05\nEPOCHS = 10\nMOMENTUM = 0.9\nprint(LR, EPOCHS)\n"
    assert (await step("mkdir -p out && cd out", 3)).startswith(
        "Your command ran successfully and did not produce any output.\n(Current Step: 3, Remaining Steps: 7)")
    text = await step("pwd && search_file MOMENTUM", 4)  # the directory, remembered
    assert text.startswith('/gf/work/out\nFound 1 matches for "MOMENTUM" in /gf/work/train.py:\nLine 5:MOMENTUM = 0.9')
    assert "(Current directory: /gf/work/out)" in text
    text = await step("search_dir nothing_like_this ..", 5)
    assert text.startswith('No matches found for "nothing_like_this" in /gf/work\n')
    assert (await step("edit 1:1", 6)).startswith("Malformed edit command. Please ensure you use the `end_of_edit`")
    text = await step("python ../train.py; echo done", 7)  # an ordinary command; no exit code is shown
    assert text.startswith("0.05 10\ndone\n(Current Step: 7")
    assert (await env.execute("env | grep -c GF_MLGYM_", 30)).stdout == "0\n"  # the tools' source is not left about
    out = await env.execute("open missing.py; exit 3", 30)
    assert out.exit_code == 3 and out.stdout == "File missing.py not found\n" and out.stderr == ""
    assert env.shell.open_file == "/gf/work/train.py" and env.shell.cwd == "/gf/work/out"


# --- MLGym's reply format and observations ---------------------------------------------------------------


def test_replies_are_a_discussion_and_one_command_block() -> None:
    edit = "DISCUSSION\nRaise the rate.\n\n```\nedit 3:3\nLR = 0.2\nend_of_edit\n```\n"
    action = parse_discussion(edit)
    assert action.thought == "Raise the rate." and action.command == "edit 3:3\nLR = 0.2\nend_of_edit"
    assert parse_discussion("DISCUSSION\nLook.\n```bash\nls -a\n```").command == "ls -a"
    with pytest.raises(FormatError, match="No action found in model response."):
        parse_discussion("DISCUSSION\nI will run ls.")
    with pytest.raises(FormatError, match="Found more than one code block in the model response."):
        parse_discussion("DISCUSSION\n```\nls\n```\nthen\n```\npwd\n```")
    ui = MlgymInterface(MlgymShell("/gf/work"), "/gf/work", 50)
    assert ui.correction("No action found").startswith("Your output was not formatted correctly. Your commands")
    scored = ui.scored(Scored({"accuracy": 0.9}, 0.9), None, {"accuracy": 0.8})
    assert scored == ("Your code produced a valid submission artefact at /gf/work/submission.csv.\n"
                      "Baseline Score: {'accuracy': 0.8}\nEvaluation Score: {'accuracy': 0.9}")
    assert ui.scored(None, NoSubmission("none"), {}).startswith("Submission artefact not found.")
    timeout = ui.timeout(Output("epoch 1\n", "", -9, 25.0, timed_out=True), 25, 5000)
    assert timeout == "epoch 1\nEXECUTION TIMED OUT BECAUSE THE COMMAND WAS RUNNING FOR MORE THAN 25 SECONDS."
    system = render("mlgym_system", window=1000, training_timeout=1800)
    assert "shows you 1000 lines of a file at a time" in system and "end_of_insert" in system
    assert is_mlgym([{"role": "system", "content": system}])
    assert not is_mlgym([{"role": "system", "content": render(
        "solver_system", action_format="thought_action", max_steps=5, training_timeout=1, command_timeout=1)}])


# --- the offline teacher (rule-based) in MLGym's interface -----------------------------------------------


def test_the_teacher_answers_mlgym_prompts_with_its_commands(ws: Path) -> None:
    """Its plan played against the real commands on a copy of a baseline.py (other commands canned)."""
    (ws / "baseline.py").write_text(SOURCE)
    ui, state = MlgymInterface(MlgymShell(str(ws)), str(ws), 30), tools.State()
    messages = [{"role": "system", "content": render("mlgym_system", window=1000, training_timeout=300)},
                {"role": "user", "content": render("mlgym_instance", description="Predict.", facts=FACTS, max_steps=30,
                                                   cwd=str(ws))}]
    canned = {"ls -l . data": "baseline.py\ndata", "head -5 data/train.csv": "id,a,b,species\n0,1,2,x",
              "python baseline.py": "done", "validate": ui.scored(Scored({"accuracy": 0.8}, 0.8), None,
                                                                   {"accuracy": 0.8})}
    commands = []
    for step in range(1, 9):
        reply = solve_reply(messages, seed=0)
        action = parse_discussion(reply)
        commands.append(action.command)
        if step == 2:  # a malformed reply and MLGym's correction in between are skipped
            messages += [{"role": "assistant", "content": "DISCUSSION\nno command"},
                         {"role": "user", "content": ui.correction("No action found in model response.")}]
        if action.command in canned:
            output = canned[action.command]
        else:
            word, *args = action.command.split("\n", 1)[0].split()
            tools.run(state, word, args, action.command.split("\n", 1)[1].removesuffix("end_of_edit") + "\n"
                      if word == "edit" else "")
            output, state.out = "\n".join(state.out), []
        ui.shell.open_file = state.file
        messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": ui.observation(output, step)}]
    assert commands[:7] == ["ls -l . data", "open baseline.py", "head -5 data/train.csv", "python baseline.py",
                            "validate", "cp submission.csv best_submission.csv", commands[6]]
    assert commands[6].startswith("edit ") and commands[6].endswith("\nend_of_edit") and commands[7] == "python baseline.py"
    constants = {line.split(" = ")[0]: line.split(" = ")[1] for line in commands[6].splitlines()[1:-1] if " = " in line}
    assert (ws / "baseline.py").read_text() != SOURCE
    assert all(f"{name} = {value}\n" in (ws / "baseline.py").read_text() for name, value in constants.items())


# --- an episode of the real solver agent against the offline teacher --------------------------------------


@pytest.fixture(scope="module")
def task(tmp_path_factory: pytest.TempPathFactory) -> ReadyTask:
    return build_task(tmp_path_factory.mktemp("mlgym-task"), task_id="t-mlgym")


@pytest.mark.timeout(600)
async def test_an_mlgym_episode_is_accepted_and_becomes_an_sft_example(
        nats_server: EmbeddedNats, bus: Bus, data_dir: Path, sink: Path, task: ReadyTask, tmp_path: Path) -> None:
    async with TeacherServer(config=TeacherConfig(solve_format_error_rate=0.15)) as teacher:
        s = config.load({"nats_url": nats_server.url, "data_dir": data_dir, "teacher_port": teacher.port,
                         "llm_max_retries": 2, "solver_interface": "mlgym"}, environ={})
        sup = Supervisor([AgentRunner(build_agent(role, bus, s)) for role in ("solver", "filter")], grace_s=2)
        running = asyncio.create_task(sup.run())
        try:
            data = await task.upload(bus)
            await bus.publish(make_envelope("solve.requested", task.request(0, 1, data), producer="test"))
            await wait_until_count(sink, "SELECT COUNT(*) FROM trajectories WHERE status != 'completed'", 1,
                                   timeout=400)
        finally:
            sup.request_stop()
            await running
    row = (await rows(sink, "SELECT status, exit_status, traj FROM trajectories"))[0]
    assert (row["status"], row["exit_status"]) == ("accepted", "submitted")
    traj = json.loads(row["traj"])
    assert traj["info"]["interface"] == "mlgym" == traj["replay_config"]["interface"]
    check_mlgym_conversation(traj)
    # the teacher's malformed replies got MLGym's format error and stayed out of the clean history
    problems = {c["problem"] for s in traj["trajectory"] for c in s["extra_info"]["format_corrections"]}
    assert problems == {"No action found in model response.", "Found more than one code block in the model response."}
    assert not any(m["content"].startswith("Your output was not formatted correctly.") for m in traj["history"])

    out = tmp_path / "export"
    sft = await gymforge("export", "sft", "--out", str(out / "sft"), url=OFFLINE, data_dir=data_dir, timeout=120)
    assert sft.code == 0, sft.err
    [example] = [json.loads(line) for line in (out / "sft" / "train.jsonl").read_text().splitlines()]
    assert example["metadata"]["task_id"] == "t-mlgym" and example["metadata"]["status"] == "accepted"
    assert "tools" not in example
    chat = [{"role": m["role"], "content": m["content"]} for m in traj["history"]]
    assert example["messages"] == chat[:len(example["messages"])] and example["messages"][-1]["role"] == "assistant"
    replies = [m["content"] for m in example["messages"] if m["role"] == "assistant"]
    assert "DISCUSSION\n" in replies[0] and any("```\nopen baseline.py\n```" in r for r in replies)
    assert any(r.split("```\n")[1].startswith("edit ") and "end_of_edit\n```" in r for r in replies)
    files = await gymforge("export", "traj", "--out", str(out / "traj"), url=OFFLINE, data_dir=data_dir,
                           timeout=120)
    assert files.code == 0, files.err
    assert json.loads((out / "traj" / "t-mlgym__0.traj").read_text())["info"]["interface"] == "mlgym"


def check_mlgym_conversation(traj: dict[str, Any]) -> None:
    """MLGym's prompts, its commands in the replies, its footer on every observation."""
    history, actions = traj["history"], [s["action"] for s in traj["trajectory"]]
    assert history[0]["content"].startswith("SETTING: You are an autonomous Machine Learning Researcher")
    assert history[1]["content"].startswith("We're currently solving the following task.")
    assert history[1]["content"].endswith("(Current Step: 0, Remaining Steps: 50)\n(Open file: n/a)\n"
                                          "(Current directory: /gf/work)\nbash-$")
    assert actions[:2] == ["ls -l . data", "open baseline.py"] and actions[-1] == "submit"
    assert "python baseline.py" in actions and actions.count("validate") >= 2
    edits = [i for i, a in enumerate(actions) if a.startswith("edit ")]
    assert edits and all(actions[i].endswith("\nend_of_edit") for i in edits)
    for i, step in enumerate(traj["trajectory"][:-1], 1):
        assert step["observation"].endswith(f"(Current Step: {i}, Remaining Steps: {50 - i})\n"
                                            f"(Open file: {'n/a' if i == 1 else '/gf/work/baseline.py'})\n"
                                            "(Current directory: /gf/work)\nbash-$")
    edited = traj["trajectory"][edits[0]]["observation"]
    model = actions[edits[0]].splitlines()[1]  # the new MODEL line
    assert edited.startswith("[File: /gf/work/baseline.py (") and UPDATED in edited
    assert f":{model}\n" in edited
    validated = traj["trajectory"][actions.index("validate")]["observation"]
    assert validated.startswith("Your code produced a valid submission artefact at /gf/work/submission.csv.\n"
                                "Baseline Score: {'accuracy': ")

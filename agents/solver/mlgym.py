"""MLGym's agent interface (its default agent config, configs/agents/default.yaml), for the solver.

The model gets MLGym's system and instance prompts (prompts/mlgym_*.j2), answers with a DISCUSSION and one
command block, and may use MLGym's file viewer and editor besides any shell command. Those commands are
shell functions (SHELL_INIT) over mlgym_tools.py, which runs inside the sandbox; each command's shell
starts in the directory the previous one ended in, with the open file and the window's line it left
(MlgymShell: MLGym keeps them in its one long-lived shell). Every observation ends with MLGym's footer:
the step, the steps left, the open file and the directory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agents.llm import Completion
from agents.solver.actions import Action, parse_discussion, shorten
from agents.solver.environment import SandboxEnvironment
from agents.solver.loop import NoSubmission, Output, Scored, ScoreError
from prompts import render

TOOLS_SOURCE = (Path(__file__).parent / "mlgym_tools.py").read_text()
WINDOW, OVERLAP = 1000, 2  # MLGym's default agent config
COMMANDS = ("open", "goto", "scroll_up", "scroll_down", "create", "edit", "insert", "search_dir", "search_file",
            "find_file")
SHELL_INIT = "\n".join([  # MLGym's commands as shell functions, and the state printed when the shell exits
    'cd -- "$GF_MLGYM_CWD" 2>/dev/null',
    '__gf_dir=$(mktemp -d 2>/dev/null || echo "${TMPDIR:-/tmp}/.gf-mlgym-$$")',
    'mkdir -p "$__gf_dir" && printf %s "$GF_MLGYM_TOOLS" > "$__gf_dir/tools.py"',
    "unset GF_MLGYM_TOOLS GF_MLGYM_INIT GF_MLGYM_CWD",
    '__gf() { python "$__gf_dir/tools.py" "$__gf_dir/state" "$@"; local rc=$?; '
    '[ -s "$__gf_dir/state" ] && . "$__gf_dir/state"; : > "$__gf_dir/state"; return $rc; }',
    *(f'{name}() {{ __gf {name} "$@"; }}' for name in COMMANDS),
    "__gf_exit() { local rc=$?; rm -rf \"$__gf_dir\"; printf '\\n%s\\n%s\\n%s\\n%s\\n%s\\n%s\\n' "
    "'<<GF_MLGYM_STATE||' \"$CURRENT_FILE\" \"$CURRENT_LINE\" \"$SCROLL_COUNT\" \"$PWD\" '||GF_MLGYM_STATE>>' >&2; "
    "exit $rc; }",
    "trap __gf_exit EXIT",
])
STATE_MARK = re.compile(r"\n?<<GF_MLGYM_STATE\|\|\n(.*)\n(.*)\n(.*)\n(.*)\n\|\|GF_MLGYM_STATE>>\n?\Z")
MULTILINE = re.compile(r"^([ \t]*(edit|insert)\b[^\n]*)\n(.*?)^[ \t]*(end_of_\2)[ \t]*$", re.DOTALL | re.MULTILINE)
TRAIN_COMMANDS = ("torchrun", "python", "python3", "accelerate", "deepspeed")  # MLGym's: they get training_timeout
EDIT_START = re.compile(r"^edit\s+(\d+):(\d+)(?:\n|$|\s)", re.MULTILINE)  # MLGym's EDIT_PATTERN
MALFORMED_EDIT = "Malformed edit command. Please ensure you use the `end_of_edit` keyword to mark the end of your edit."


def guard(command: str) -> str:
    """Each `edit`/`insert` with its text up to end_of_edit/end_of_insert becomes a heredoc (as MLGym's
    guard_multiline_input does): the text reaches the command on stdin, verbatim."""
    def heredoc(m: re.Match[str]) -> str:
        first, end = m.group(1).rstrip(), m.group(4)
        marker = f"<< '{end}'"
        head = first if first.endswith(marker) else f"{first} {marker}"
        return f"{head}\n{m.group(3)}{end}"
    return MULTILINE.sub(heredoc, command)


@dataclass
class MlgymShell:
    """What MLGym's long-lived shell would remember between commands."""

    cwd: str  # the workspace, until a command ends elsewhere
    open_file: str = ""
    line: int = 0
    scroll_count: int = 0
    last_action: str = ""

    def env(self) -> dict[str, str]:
        return {"GF_MLGYM_TOOLS": TOOLS_SOURCE, "GF_MLGYM_CWD": self.cwd, "CURRENT_FILE": self.open_file,
                "CURRENT_LINE": str(self.line), "WINDOW": str(WINDOW), "OVERLAP": str(OVERLAP),
                "SCROLL_COUNT": str(self.scroll_count), "LAST_ACTION": self.last_action[:1000].replace("\0", "")}

    def take(self, stderr: str) -> str:
        """Read the state the command ended with from the end of its stderr; the rest of stderr."""
        m = STATE_MARK.search(stderr)
        if m is None:  # killed, or it replaced the shell: nothing changed that we can know
            return stderr
        self.open_file, line, count, self.cwd = m.groups()
        self.line = int(line) if line.lstrip("-").isdigit() else 0
        self.scroll_count = int(count) if count.isdigit() else 0
        return stderr[:m.start()]


@dataclass
class MlgymEnvironment:
    """The sandboxed workspace with MLGym's commands defined in every command's shell."""

    inner: SandboxEnvironment
    shell: MlgymShell

    def timeout_for(self, command: str) -> float:
        long = any(word in command for word in TRAIN_COMMANDS)
        return self.inner.training_timeout_s if long else self.inner.command_timeout_s

    async def execute(self, command: str, timeout: float) -> Output:
        if EDIT_START.match(command) and "end_of_edit" not in command:
            return Output(stdout=MALFORMED_EDIT, stderr="", exit_code=0, duration_s=0.0)
        script = 'eval "$GF_MLGYM_INIT"; ' + guard(command)
        out = await self.inner.run(["bash", "-c", script], timeout, env={**self.shell.env(), "GF_MLGYM_INIT": SHELL_INIT})
        self.shell.last_action = command.strip()
        return Output(stdout=out.stdout, stderr=self.shell.take(out.stderr), exit_code=out.exit_code,
                      duration_s=out.duration_s, timed_out=out.timed_out, oom_killed=out.oom_killed)

    async def score(self) -> Scored:
        return await self.inner.score()


@dataclass
class MlgymInterface:
    """MLGym's reply format and observation texts."""

    shell: MlgymShell
    workdir: str  # where submission.csv is, as the model sees it
    max_steps: int

    def parse(self, reply: Completion) -> Action:
        return parse_discussion(reply.text)

    def correction(self, problem: str) -> str:
        return render("mlgym_format").rstrip("\n")

    def output(self, out: Output, limit: int) -> str:
        text = shorten("\n".join(p.rstrip("\n") for p in (out.stdout, out.stderr) if p.strip()), limit)
        return text + "\n(killed: out of memory)" if out.oom_killed else text

    def timeout(self, out: Output, seconds: float, limit: int) -> str:
        return render("mlgym_timeout", output=self.output(out, limit), seconds=round(seconds)).rstrip("\n")

    def scored(self, scored: Scored | None, error: ScoreError | None, baseline: dict[str, float]) -> str:
        return render("mlgym_validate", missing=isinstance(error, NoSubmission), error=str(error or ""),
                      submission=f"{self.workdir.rstrip('/')}/submission.csv", baseline=baseline,
                      metrics=scored.metrics if scored else {}).rstrip("\n")

    def observation(self, text: str, step: int) -> str:
        footer = render("mlgym_next_step", output=bool(text.strip()), step=step,
                        remaining=self.max_steps - step, open_file=self.shell.open_file or "n/a",
                        cwd=self.shell.cwd).rstrip("\n")
        return f"{text.rstrip()}\n{footer}" if text.strip() else footer


def mlgym_episode(inner: SandboxEnvironment, workdir: str, max_steps: int) -> tuple[MlgymEnvironment, MlgymInterface]:
    """The environment and the interface of one episode, sharing its shell's state."""
    shell = MlgymShell(cwd=workdir)
    return MlgymEnvironment(inner, shell), MlgymInterface(shell, workdir, max_steps)

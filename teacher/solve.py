"""The offline teacher's "solve" policy: a RULE-BASED search that plays solver episodes. Not a model.

It rebuilds what happened from the conversation (the task facts in the instance's ```json block, then
each usable assistant action and the observation that followed it, in thought_action or tool-call form)
and replays one fixed research plan against it:

  ls -l . data -> cat baseline.py -> head -5 data/train.csv -> python baseline.py -> validate
  -> cp submission.csv best_submission.csv
  -> for each chosen edit of baseline.py: sed -i ... -> python baseline.py -> validate
     (-> cp submission.csv best_submission.csv when it beats the best so far)
  -> cp best_submission.csv submission.csv (when the last submission is not the best) -> submit

The edits are bundles.candidate_edits of the baseline.py it read; the seed (the attempt number) picks how
many and in which order, so attempts differ and some do not beat the baseline. The same seed and the same
observations always give the same reply. A timed-out command is re-issued; a failed run or an unscored
submission counts as worse; an unscored `submit` restores the best copy and submits again.

Replies are "THOUGHT: ...\\n\\n```bash\\n<one command>\\n```\\n". Optionally a share of replies is malformed
(no block, or two), and a script of replies can stand in for the whole policy (tests, benchmarks).

When the system prompt is MLGym's (its agent interface), the same plan is played with MLGym's tools and
reply format: "DISCUSSION\\n...\\n\\n```\\n<command>\\n```\\n"; it reads baseline.py with `open baseline.py`
and changes the constants with `edit a:b` ... `end_of_edit` over the lines the window showed (the sed
command when the window did not show them); observations lose MLGym's step footer before they are read.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from agents import replies
from teacher.bundles import Edit, candidate_edits
from teacher.bundles.edits import BASELINE, literal, module_constants

LIST_CMD = "ls -l . data"
READ_CMD = f"cat {BASELINE}"
PEEK_CMD = "head -5 data/train.csv"
RUN_CMD = f"python {BASELINE}"
VALIDATE, SUBMIT = "validate", "submit"
BEST = "best_submission.csv"
SAVE_BEST = f"cp submission.csv {BEST}"
RESTORE_BEST = f"cp {BEST} submission.csv"
OPEN_CMD = f"open {BASELINE}"  # the mlgym interface's READ_CMD

CORRECTION = "Your reply could not be used:"
MLGYM_MARK = "you're working directly in the command line with a special interface"  # MLGym's system prompt
MLGYM_CORRECTION = "Your output was not formatted correctly."
MLGYM_FOOTER = re.compile(r"\n?\(Current Step: \d+, Remaining Steps: -?\d+\)\n\(Open file: .*\)\n"
                          r"\(Current directory: .*\)\nbash-\$\s*\Z")
NO_OUTPUT = "Your command ran successfully and did not produce any output."
EDITED = "File updated."
WINDOW_LINE = re.compile(r"^(\d+):(.*)$", re.MULTILINE)
MAX_TIMEOUT_RETRIES = 2  # re-issues of one step after a timeout; then it counts as failed
MAX_SUBMIT_FALLBACKS = 2  # restore-and-submit rounds after an unscored submit
SHELL_TAGS = {"", "bash", "sh", "shell"}
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)\n?^```[ \t]*$", re.DOTALL | re.MULTILINE)
EXIT_CODE = re.compile(r"\(exit code (-?\d+)\)")
TIMED_OUT = re.compile(r"timed out after ([\d.]+) ?s|TIMED OUT BECAUSE THE COMMAND WAS RUNNING FOR MORE THAN ([\d.]+) SECONDS")
FAILURES = ("could not be scored", "Traceback (most recent call last)", "Submission artefact not found")
EVALUATION = re.compile(r"^Evaluation Score:\s*(\{.*\})\s*$", re.MULTILINE)
CONSTANT_LINE = re.compile(r"^[A-Z][A-Z0-9_]* = .+$", re.MULTILINE)


class SolveError(ValueError):
    """The conversation lacks what the policy needs (the task facts, a non-empty script)."""


@dataclass(frozen=True)
class Facts:
    task_type: str
    metric: str
    direction: str  # "maximize" | "minimize"
    baseline_score: float | None


@dataclass(frozen=True)
class Step:
    thought: str
    command: str


@dataclass(frozen=True)
class Turn:
    command: str
    observation: str


Plan = Generator[Step, str, None]


# --- the reply --------------------------------------------------------------------------------------------


def solve_reply(messages: Sequence[dict[str, Any]], *, seed: int | None = None, format_error_rate: float = 0.0,
                script: Sequence[str] | None = None) -> str:
    """The next assistant reply of a solver episode, as text (the server shapes tool calls from it)."""
    n_assistant = sum(1 for m in messages if m.get("role") == "assistant")
    if script is not None:
        if not script:
            raise SolveError("the solve script is empty")
        return script[min(n_assistant, len(script) - 1)]
    mlgym = is_mlgym(messages)
    step = next_step(task_facts(messages), turns(messages), seed, mlgym)
    if malformed_now(seed, n_assistant, format_error_rate):
        return malformed_reply(step, n_assistant, mlgym)
    return format_reply(step, mlgym)


def is_mlgym(messages: Sequence[dict[str, Any]]) -> bool:
    """The episode offers MLGym's agent interface: its system prompt says so."""
    return any(m.get("role") == "system" and MLGYM_MARK in content_text(m) for m in messages)


def format_reply(step: Step, mlgym: bool = False) -> str:
    if mlgym:
        return f"DISCUSSION\n{step.thought}\n\n```\n{step.command}\n```\n"
    return f"THOUGHT: {step.thought}\n\n```bash\n{step.command}\n```\n"


def malformed_now(seed: int | None, n_assistant: int, rate: float) -> bool:
    """A deterministic draw from the seed and the number of assistant messages so far."""
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(f"solve-format:{seed}:{n_assistant}".encode()).hexdigest()
    return int(digest[:8], 16) % 10_000 < rate * 10_000


def malformed_reply(step: Step, n_assistant: int, mlgym: bool = False) -> str:
    """Alternately no command block at all, or two blocks (the intended command and a second one)."""
    head, tag = ("DISCUSSION\n", "") if mlgym else ("THOUGHT: ", "bash")
    if n_assistant % 2 == 0:
        return f"{head}{step.thought}\n\nNext I will run {step.command} in the workspace.\n"
    return (f"{head}{step.thought}\n\n```{tag}\n{step.command}\n```\n\n"
            f"And afterwards, to see what changed:\n\n```{tag}\n{LIST_CMD}\n```\n")


# --- reading the conversation -----------------------------------------------------------------------------


def content_text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def task_facts(messages: Sequence[dict[str, Any]]) -> Facts:
    for m in messages:
        if m.get("role") != "user":
            continue
        for block in replies.json_blocks(content_text(m)):
            if isinstance(block, dict) and {"task_type", "metric", "direction"} <= block.keys():
                baseline = block.get("baseline_score")
                return Facts(task_type=str(block["task_type"]), metric=str(block["metric"]),
                             direction="minimize" if block["direction"] == "minimize" else "maximize",
                             baseline_score=float(baseline) if isinstance(baseline, int | float) else None)
    raise SolveError("solve needs the task facts (task_type, metric, direction) as a ```json block")


def shell_blocks(text: str) -> list[str]:
    return [body for tag, body in FENCE.findall(text) if tag.lower() in SHELL_TAGS]


def action_of(message: dict[str, Any]) -> str | None:
    """The command of a well-formed assistant action (one bash tool call, or one shell block), else None."""
    calls = message.get("tool_calls") or []
    if calls:
        fn = (calls[0].get("function") or {}) if len(calls) == 1 else {}
        if fn.get("name") != "bash":
            return None
        try:
            command = json.loads(fn.get("arguments") or "{}").get("command")
        except (json.JSONDecodeError, AttributeError):
            return None
        return (command.strip() or None) if isinstance(command, str) else None
    blocks = shell_blocks(content_text(message))
    return (blocks[0].strip() or None) if len(blocks) == 1 else None


def turns(messages: Sequence[dict[str, Any]]) -> list[Turn]:
    """(action, observation) pairs; malformed replies and their corrections are skipped."""
    out: list[Turn] = []
    pending: str | None = None
    for m in messages:
        role = m.get("role")
        if role == "assistant":
            pending = action_of(m)
        elif role in ("user", "tool") and pending is not None:
            text = content_text(m)
            if not text.startswith((CORRECTION, MLGYM_CORRECTION)):
                out.append(Turn(pending, observed(text)))
            pending = None
    return out


def observed(text: str) -> str:
    """An observation without MLGym's footer (step, open file, directory); its no-output note is no output."""
    text = MLGYM_FOOTER.sub("", text)
    return "" if text.strip() == NO_OUTPUT else text


# --- observations ------------------------------------------------------------------------------------------


def timed_out(observation: str) -> bool:
    return TIMED_OUT.search(observation) is not None


def failed(observation: str) -> bool:
    """A failed command: an exit code shown (bash interface), a traceback (MLGym's shows no exit code), a
    timeout, or an unscored submission."""
    return EXIT_CODE.search(observation) is not None or any(f in observation for f in FAILURES) or \
        timed_out(observation)


def failure_reason(observation: str) -> str:
    if m := TIMED_OUT.search(observation):
        return f"it timed out after {m.group(1) or m.group(2)} s"
    if m := EXIT_CODE.search(observation):
        return f"it exited with code {m.group(1)}"
    if "Traceback (most recent call last)" in observation:
        return "it raised an exception"
    return "its submission could not be scored"


def score(observation: str, metric: str) -> float | None:
    m = EVALUATION.search(observation)
    if not m or "could not be scored" in observation:
        return None
    try:  # JSON (the bash interface), or a Python dict as MLGym prints it
        value = json.loads(m.group(1)).get(metric)
    except (json.JSONDecodeError, AttributeError):
        try:
            value = ast.literal_eval(m.group(1)).get(metric)
        except (ValueError, SyntaxError, AttributeError):
            return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def versus(value: float, reference: float | None) -> str:
    if reference is None:
        return ""
    if abs(value - reference) <= 1e-9 * max(1.0, abs(reference)):
        return ", matching the reference"
    return f" (the reference is {fmt(reference)})"


def said(output: str) -> str:
    """The last line a run printed (the baseline reports its held-out score there), quoted when short."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and line.strip() != "(no output)"]
    return f" and reports \"{lines[-1]}\"" if lines and len(lines[-1]) <= 160 else ""


def fmt(value: float | None) -> str:
    return "no score" if value is None else f"{value:.6g}"


# --- the edits ---------------------------------------------------------------------------------------------


def baseline_constants(source: str) -> dict[str, Any]:
    """baseline.py's constants from `cat` output; line by line when the whole does not parse (cut output)."""
    found = module_constants(source)
    if "MODEL" in found:
        return found
    for line in CONSTANT_LINE.findall(source):
        found.update(module_constants(line))
    return found


def as_source(constants: dict[str, Any]) -> str:
    return "\n".join(f"{name} = {literal(value)}" for name, value in constants.items()) + "\n"


def choose_edits(source: str, task_type: str, seed: int | None) -> list[Edit]:
    """A seed-dependent order and number (1..all) of candidate_edits, each one's thought written for the
    file as the edits before it leave it."""
    constants = baseline_constants(source)
    edits = candidate_edits({BASELINE: as_source(constants)}, task_type)
    if not edits:
        return []
    rng = random.Random(0 if seed is None else seed)
    order = rng.sample(edits, len(edits))
    chosen = order[:rng.randint(1, len(order))]
    out = []
    for edit in chosen:
        now = {e.command: e for e in candidate_edits({BASELINE: as_source(constants)}, task_type)}
        out.append(now.get(edit.command, edit))
        constants.update(edit.settings)
    return out


def settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{name} = {literal(value)}" for name, value in settings.items())


# --- MLGym's editor ----------------------------------------------------------------------------------------


def window_lines(observation: str) -> dict[int, str]:
    """The numbered lines an `open`/`edit` window showed ("12:MODEL = ..."), by line number."""
    return {int(n): text for n, text in WINDOW_LINE.findall(observation)} if "[File: " in observation else {}


def window_source(lines: dict[int, str]) -> str:
    return "".join(f"{lines[n]}\n" for n in sorted(lines))


def editor_command(lines: dict[int, str], settings: dict[str, Any]) -> str | None:
    """`edit a:b` rewriting the lines that set the constants and keeping those between them; None when the
    window did not show them all."""
    at: dict[str, int] = {}
    for name in settings:
        found = [n for n in sorted(lines) if lines[n].startswith(f"{name} = ")]
        if not found:
            return None
        at[name] = found[0]
    first, last = min(at.values()), max(at.values())
    if any(n not in lines for n in range(first, last + 1)):
        return None
    new = {n: f"{name} = {literal(settings[name])}" for name, n in at.items()}
    body = "\n".join(new.get(n, lines[n]) for n in range(first, last + 1))
    return f"edit {first}:{last}\n{body}\nend_of_edit"


def edit_step(edit: Edit, lines: dict[int, str], note: str) -> Step:
    """The edit as MLGym's `edit` command when the window showed its lines, else as the sed command."""
    command = editor_command(lines, edit.settings) if lines else None
    if command is None:
        return Step(f"{note}{edit.thought}", edit.command)
    first, last = command.split("\n", 1)[0].removeprefix("edit ").split(":")
    where = f"line {first}" if first == last else f"lines {first}-{last}"
    return Step(f"{note}{edit.thought} In the open file that is {where}.", command)


def applied(step: Step, observation: str) -> bool:
    if step.command.startswith("edit "):
        return EDITED in observation
    return not failed(observation)


# --- the plan ----------------------------------------------------------------------------------------------


def next_step(facts: Facts, history: Sequence[Turn], seed: int | None, mlgym: bool = False) -> Step:
    """Replay the plan over what was observed; a timed-out step is issued again (up to a limit)."""
    plan = research_plan(facts, seed, mlgym)
    step = next(plan)
    retries = 0
    for turn in history:
        if timed_out(turn.observation) and retries < MAX_TIMEOUT_RETRIES:
            retries += 1
            step = Step(retry_thought(turn), step.command)
            continue
        retries = 0
        try:
            step = plan.send(turn.observation)
        except StopIteration:
            step = Step("I have nothing left to try that would help; I submit submission.csv as it is.", SUBMIT)
    return step


def retry_thought(turn: Turn) -> str:
    m = TIMED_OUT.search(turn.observation)
    after = f" after {m.group(1)} s" if m else ""
    return (f"`{turn.command}` timed out{after} and was stopped. That can happen on a busy machine even when "
            f"the command itself is fine, so I will run it once more before changing anything.")


def research_plan(facts: Facts, seed: int | None, mlgym: bool = False) -> Plan:
    metric, direction = facts.metric, facts.direction
    sense = "higher" if direction == "maximize" else "lower"
    listing = yield Step(
        f"Before changing anything I want to see what I am working with: the starter files in the workspace "
        f"and the data under data/. The baseline scores {fmt(facts.baseline_score)} on {metric} ({sense} is "
        f"better), which is the number to beat.", LIST_CMD)
    split = " and a validation split" if "valid" in listing else ""
    shown = yield Step(
        f"The workspace has the starter code and data/ with the training and test files{split}. I'll "
        f"{'open' if mlgym else 'read'} {BASELINE} first: its model and preprocessing tell me which changes are "
        f"worth trying.", OPEN_CMD if mlgym else READ_CMD)
    lines = window_lines(shown) if mlgym else {}
    source = window_source(lines) if mlgym else shown
    constants = baseline_constants(source)
    model = literal(constants["MODEL"]) if "MODEL" in constants else "an unknown model"
    head = yield Step(
        f"{BASELINE} fits MODEL = {model}, chosen through module-level constants that I can change with "
        f"{'the edit command' if mlgym else 'sed'}. Before training, a look at the first rows of data/train.csv "
        f"to check the columns and the label format.", PEEK_CMD)
    columns = len(head.splitlines()[0].split(",")) if head.strip() and not failed(head) else 0
    seen = f"The header has {columns} columns and the rows look consistent with it. " if columns > 1 else ""
    run = yield Step(
        f"{seen}I'll run the baseline unchanged first, to reproduce its score and have a submission.csv to "
        f"compare every change against.", RUN_CMD)
    outcome = f"{BASELINE} failed ({failure_reason(run)})" if failed(run) else f"{BASELINE} finished{said(run)}"
    result = yield Step(
        f"{outcome}. I'll score submission.csv with validate to confirm the reference {metric} "
        f"({fmt(facts.baseline_score)}) before trying improvements.", VALIDATE)
    best = score(result, metric)
    current_is_best = False
    if best is not None:
        yield Step(
            f"The unchanged baseline scores {metric} = {fmt(best)}{versus(best, facts.baseline_score)}. I'll keep "
            f"a copy as {BEST} so that I can always go back to it.",
            SAVE_BEST)
        current_is_best = True
    note = ""
    for edit in choose_edits(source, facts.task_type, seed):
        step = edit_step(edit, lines, note)
        edited = yield step
        if not applied(step, edited):
            why = failure_reason(edited) if failed(edited) else "the editor did not update the file"
            note = f"The edit did not apply ({why}); I'll move on. "
            continue
        lines.update(window_lines(edited))
        run = yield Step(
            f"{BASELINE} now has {settings_text(edit.settings)}. Retraining writes this model's predictions "
            f"to submission.csv.", RUN_CMD)
        if failed(run):
            current_is_best = False
            note = (f"That run failed ({failure_reason(run)}), so the change is not usable and the best "
                    f"{metric} stays {fmt(best)}. ")
            continue
        result = yield Step(
            f"Training finished{said(run)}. I'll validate the new submission.csv against the best {metric} so far "
            f"({fmt(best)}).", VALIDATE)
        value = score(result, metric)
        if value is not None and (best is None or better(value, best, direction)):
            gain = f", a change of {value - best:+.4g}" if best is not None else ""
            yield Step(
                f"{metric} went from {fmt(best)} to {fmt(value)}{gain}, so MODEL = "
                f"{literal(edit.settings.get('MODEL'))} is the best so far. I'll keep this submission as {BEST}.",
                SAVE_BEST)
            best, current_is_best, note = value, True, ""
        else:
            current_is_best = False
            why = "could not be scored" if value is None else f"scored {fmt(value)}"
            note = (f"That model {why}, no better than the best {metric} of {fmt(best)}, so {BEST} stays "
                    f"as it is. ")
    if best is not None and not current_is_best:
        yield Step(
            f"{note}The current submission.csv is not my best one; {BEST} holds the {metric} = {fmt(best)} "
            f"predictions. I'll copy it back before submitting.", RESTORE_BEST)
        note = ""
    yield from submit(facts, best, note)


def submit(facts: Facts, best: float | None, note: str) -> Plan:
    base = facts.baseline_score
    if best is None:
        verdict = "None of my runs could be scored, so I submit what I have."
    elif base is not None and better(best, base, facts.direction):
        verdict = f"That beats the baseline's {fmt(base)}."
    else:
        verdict = f"I could not beat the baseline's {fmt(base)}, so I submit the best I have."
    result = yield Step(
        f"{note}submission.csv holds my best predictions, {facts.metric} = {fmt(best)}. {verdict} Submitting.",
        SUBMIT)
    for _ in range(MAX_SUBMIT_FALLBACKS):
        if not failed(result) or best is None:
            return
        yield Step(
            f"The submission could not be scored ({failure_reason(result)}). {BEST} scored {fmt(best)} when I "
            f"validated it, so I'll restore it as submission.csv and submit again.", RESTORE_BEST)
        result = yield Step(f"submission.csv is again the {fmt(best)} submission. Submitting.", SUBMIT)

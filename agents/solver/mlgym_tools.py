"""MLGym's file viewer and editor (SWE-agent's commands), written anew: this file runs INSIDE the sandbox.

MLGym's default agent gets `open`, `goto`, `scroll_up`, `scroll_down`, `create`, `edit`, `insert`,
`search_dir`, `search_file` and `find_file` as shell functions; they keep the open file and the window's
middle line in the shell variables CURRENT_FILE and CURRENT_LINE. Here each is a shell function (see
mlgym.SHELL_INIT) that runs a copy of this file as `python tools.py STATE_FILE COMMAND ARGS...`: the
state comes in through the environment (CURRENT_FILE, CURRENT_LINE, WINDOW, OVERLAP, SCROLL_COUNT,
LAST_ACTION) and goes back as `export` lines written to STATE_FILE, which the function sources. `edit` and
`insert` read their text from stdin (the heredoc the solver wraps around the body, as MLGym does).

The messages, the window's arithmetic and the edit semantics follow MLGym's tools/*.sh. Standard library
only, and one file: the sandbox's python runs it without this project on its path.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass, field

UPDATED = ("File updated. Please review the changes and make sure they are correct (correct indentation, "
           "no duplicate lines, etc). Edit the file again if necessary.")
NO_FILE = "No file open. Use the open command first."
NO_FILE_EDIT = "No file open. Use the `open` command first."
DIGITS = re.compile(r"[0-9]+")
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"\x00\x00\x01\x00")


@dataclass
class State:
    file: str = ""  # CURRENT_FILE: the open file's real path, '' when none is open
    line: int = 0  # CURRENT_LINE: the window's middle line
    window: int = 1000  # WINDOW (MLGym's default agent config)
    overlap: int = 2  # OVERLAP: lines kept on screen by a scroll
    scroll_count: int = 0
    last_action: str = ""  # the previous action, as MLGym sets LAST_ACTION
    out: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, env: dict[str, str]) -> State:
        def number(name: str, default: int) -> int:
            try:
                return int(float(env.get(name) or default))
            except ValueError:
                return default
        return cls(file=env.get("CURRENT_FILE", ""), line=number("CURRENT_LINE", 0), window=number("WINDOW", 1000),
                   overlap=number("OVERLAP", 2), scroll_count=number("SCROLL_COUNT", 0),
                   last_action=env.get("LAST_ACTION", ""))

    def say(self, *lines: str) -> None:
        self.out.extend(lines)

    def exports(self) -> str:
        return "".join(f"export {name}={shlex.quote(str(value))}\n" for name, value in
                       (("CURRENT_FILE", self.file), ("CURRENT_LINE", self.line), ("SCROLL_COUNT", self.scroll_count)))


# --- files and the window ------------------------------------------------------------------------------


def read_lines(path: str) -> list[str]:
    """The file's lines as awk and grep count them (a last line without a newline counts)."""
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        lines = f.read().split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def write_lines(path: str, lines: list[str]) -> None:
    """Every line with a newline, as `printf "%s\\n"` writes them (no lines: one empty line)."""
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write("".join(f"{line}\n" for line in lines) if lines else "\n")


def constrain(line: float, total: int, window: int) -> float:
    half = window // 2
    return max(min(line, total - half), half)


def window_text(path: str, lines: list[str], line: float, window: int) -> list[str]:
    """The header, the numbered lines around `line`, and how many lines are above and below."""
    total = len(lines)
    out = [f"[File: {os.path.realpath(path)} ({total} lines total)]"]
    above = math.floor(max(0.0, line - window / 2))
    below = math.floor(max(0.0, total - line - window / 2) + 0.5)
    end = min(total, math.floor(max(line + window / 2, window / 2)))
    start = max(0, end - window)
    if above > 0:
        out.append(f"({above} more lines above)")
    out += [f"{n}:{text}" for n, text in enumerate(lines[start:end], start + 1)]
    if below > 0:
        out.append(f"({below} more lines below)")
    return out


def show(s: State, line: float, lines: list[str] | None = None, window: int | None = None,
         move: bool = True) -> None:
    """Constrain `line` to the file, print the window there; `move` makes it the state's line."""
    lines = read_lines(s.file) if lines is None else lines
    size = s.window if window is None else window
    line = constrain(line, len(lines), size)
    if move:
        s.line = int(line)
    s.say(*window_text(s.file, lines, line, size))


def middle_for(s: State, target: int) -> int:
    """The middle line that shows `target` a sixth of the window from the top."""
    return max(math.floor(target + s.window / 2 - s.window // 6), 1)


def is_image(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or \
        path.lower().endswith(".svg")


# --- the viewer ----------------------------------------------------------------------------------------


def open_(s: State, args: list[str]) -> int:
    path = args[0] if args else ""
    if not path:
        s.say('Usage: open "<file>"')
        return 0
    if os.path.isfile(path):
        if is_image(path):
            s.say(f"Error: {path} is an image file. Current environment does not support image viewing.")
            return 0
    elif os.path.isdir(path):
        s.say(f"Error: {path} is a directory. You can only open files. Use cd or ls to navigate directories.")
        return 0
    else:
        s.say(f"File {path} not found")
        return 0
    line: float = s.window / 2
    if len(args) > 1 and args[1]:
        if not DIGITS.fullmatch(args[1]):
            s.say('Usage: open "<file>" [<line_number>]', "Error: <line_number> must be a number")
            return 0
        if os.path.getsize(path) > 20000:
            s.say("The file is larger than 20000 characters, please use 'head -n NUM_LINES' to open it")
            return 0
        wanted, total = int(args[1]), len(read_lines(path))
        if wanted > total:
            s.say(f"Warning: <line_number> ({wanted}) is greater than the number of lines in the file ({total})",
                  f"Warning: Setting <line_number> to {total}")
            line = total
        elif wanted < 1:
            s.say(f"Warning: <line_number> ({wanted}) is less than 1", "Warning: Setting <line_number> to 1")
            line = 1
        else:
            line = middle_for(s, wanted)
    s.file = os.path.realpath(path)
    show(s, line)
    return 0


def goto(s: State, args: list[str]) -> int:
    if len(args) > 1:
        s.say("goto allows only one line number at a time.")
    elif not s.file:
        s.say(NO_FILE)
    elif not args or not args[0]:
        s.say("Usage: goto <line>")
    elif not DIGITS.fullmatch(args[0]):
        s.say("Usage: goto <line>", "Error: <line> must be a number")
    else:
        total = len(read_lines(s.file))
        if int(args[0]) > total:
            s.say(f"Error: <line> must be less than or equal to {total}")
        else:
            show(s, middle_for(s, int(args[0])))
    return 0


def scroll(s: State, step: int) -> int:
    if not s.file:
        s.say(NO_FILE)
        return 0
    show(s, s.line + step)
    if s.last_action.strip() not in ("scroll_up", "scroll_down"):
        s.scroll_count = 0
    s.scroll_count += 1
    if s.scroll_count >= 3:
        s.say("", "WARNING: Scrolling many times in a row is very inefficient.",
              "If you know what you are looking for, use `search_file <pattern>` instead.", "")
    return 0


def create(s: State, args: list[str]) -> int:
    path = args[0] if args else ""
    if not path:
        s.say("Usage: create <filename>")
        return 0
    if os.path.exists(path):
        s.say(f"Error: File '{path}' already exists.")
        return open_(s, [path])
    try:
        write_lines(path, [""])
    except OSError as exc:
        print(f"bash: {path}: {exc.strerror}", file=sys.stderr)
    return open_(s, [path])


# --- the editor ----------------------------------------------------------------------------------------


def lint(path: str, lines: list[str]) -> list[tuple[int, int, str]]:
    """flake8's E999 (a syntax error) for a python file, as (line, column, problem); nothing else."""
    if not path.endswith(".py"):
        return []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile("".join(f"{line}\n" for line in lines), path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        return [(exc.lineno or 1, exc.offset or 0, f"E999 {type(exc).__name__}: {exc.msg}")]
    except ValueError as exc:  # e.g. a null byte
        return [(1, 0, f"E902 {type(exc).__name__}: {exc}")]
    return []


def new_errors(before: list[tuple[int, int, str]], after: list[tuple[int, int, str]], first: int, last: int,
               count: int) -> list[str]:
    """The errors after the change that were not there before it: earlier ones above the replaced lines are
    kept, those inside are dropped, those below move by the lines added (MLGym's _split_string)."""
    added = count - (last - first + 1)
    moved = {(n if n < first else n + added, col, problem) for n, col, problem in before
             if n < first or n > last}
    return [problem for n, col, problem in after if (n, col, problem) not in moved]


def body_lines(text: str) -> list[str]:
    """The lines `while IFS= read -r line` reads: a last line without a newline is not read."""
    return text.split("\n")[:-1]


def writable(s: State) -> bool:
    if os.access(s.file, os.W_OK):
        return True
    s.say(f"Error: You cannot edit read-only file {s.file}")
    return False


def refuse(s: State, what: str, errors: list[str], edited: list[str], edited_view: tuple[int, int],
           old: list[str], old_view: tuple[int, int]) -> None:
    verb = "edit" if what == "edit" else "insertion"
    s.say(f"Your proposed {verb} has introduced new syntax error(s). Please read this error message carefully "
          f"and then retry {'editing the file' if what == 'edit' else 'inserting into the file'}.", "", "ERRORS:",
          *(f"- {e}" for e in errors), "", f"This is how your {verb} would have looked if applied", "-" * 49)
    show(s, edited_view[0], edited, edited_view[1], move=False)
    s.say("-" * 49, "", f"This is the original code before your {verb}", "-" * 49)
    show(s, old_view[0], old, old_view[1], move=False)
    s.say("-" * 49, f"Your changes have NOT been applied. Please fix your {what} command and try again.",
          "You either need to 1) Specify the correct start/end line arguments or 2) Correct your edit code."
          if what == "edit" else
          "You either need to 1) Specify the correct line number argument or 2) Correct your insertion code.",
          f"DO NOT re-run the same failed {what} command. Running it again will lead to the same error.")


def edit(s: State, args: list[str], text: str) -> int:
    if not s.file:
        s.say(NO_FILE_EDIT)
        return 0
    start_s, end_s = ((args[0] if args else "") + ":").split(":")[:2]
    usage = "Usage: edit <start_line>:<end_line>"
    if not start_s or not end_s:
        s.say(usage)
        return 0
    for name, value in (("start_line", start_s), ("end_line", end_s)):
        if not DIGITS.fullmatch(value):
            s.say(usage, f"Error: {name} must be a number")
            return 0
    start, end = int(start_s), int(end_s)
    if start < 1 or end < start - 1:  # MLGym's bash arrays would drop or repeat lines here
        s.say(usage, "Error: start_line must be at least 1 and end_line at least start_line - 1")
        return 0
    if not writable(s):
        return 1
    old, body = read_lines(s.file), body_lines(text)
    new = old[:start - 1] + body + old[end:]
    errors = new_errors(lint(s.file, old), lint(s.file, new), start, end, len(body))
    if errors:
        refuse(s, "edit", errors, new, (len(body) // 2 + start - 1, len(body) + 10), old,
               ((end - start + 2) // 2 + start - 1, end - start + 11))
        return 0
    write_lines(s.file, new)
    show(s, start - 1, new)
    s.say(UPDATED)
    return 0


def insert(s: State, args: list[str], text: str) -> int:
    if not s.file:
        s.say(NO_FILE_EDIT)
        return 0
    after_s = " ".join(args[0].split()) if args else ""  # `$(echo $1)`
    if not after_s:
        s.say("Usage: insert <line_number>")
        return 0
    if not DIGITS.fullmatch(after_s):
        s.say("Usage: insert <line_number>", "Error: line_number must be a number")
        return 0
    if not writable(s):
        return 1
    after, old, body = int(after_s), read_lines(s.file), body_lines(text)
    new = old[:after] + body + old[after:]
    errors = new_errors(lint(s.file, old), lint(s.file, new), after + 1, after + len(body), len(body))
    if errors:
        refuse(s, "insert", errors, new, (after + len(body) // 2, len(body) + 10), old, (after, 10))
        return 0
    write_lines(s.file, new)
    show(s, after + 1, new)
    s.say(UPDATED)
    return 0


# --- search --------------------------------------------------------------------------------------------


def grep(options: str, term: str, paths: list[str]) -> list[str]:
    """grep's output lines (its errors go to stderr, as in MLGym's pipelines); in batches of 500 paths."""
    out: list[str] = []
    for i in range(0, len(paths), 500):
        run = subprocess.run(["grep", options, "--", term, *paths[i:i + 500]], stdout=subprocess.PIPE,
                             check=False)
        out += run.stdout.decode("utf-8", "surrogateescape").splitlines()
    return out


def directory(s: State, args: list[str], usage: str) -> tuple[str, str] | None:
    """(term, real directory) from `TERM [DIR]`, or None after saying why not."""
    if len(args) not in (1, 2):
        s.say(usage)
        return None
    if len(args) == 2 and not os.path.isdir(args[1]):
        s.say(f"Directory {args[1]} not found")
        return None
    return args[0], os.path.realpath(args[1] if len(args) == 2 else "./")


def files_under(root: str) -> list[str]:
    """Regular files under root, as `find root -type f`, in name order."""
    found = []
    for parent, dirs, names in os.walk(root):
        dirs.sort()
        found += [p for p in (os.path.join(parent, n) for n in sorted(names)) if os.path.isfile(p)
                  and not os.path.islink(p)]
    return found


def search_dir(s: State, args: list[str]) -> int:
    found = directory(s, args, "Usage: search_dir <search_term> [<dir>]")
    if found is None:
        return 0
    term, root = found
    paths = [p for p in files_under(root) if "/." not in p]  # find's ! -path '*/.*'
    counts = {p: int(n) for p, n in (line.rsplit(":", 1) for line in grep("-cIH", term, paths)) if int(n)}
    if not counts:
        s.say(f'No matches found for "{term}" in {root}')
    elif len(counts) > 100:
        s.say(f'More than {len(counts)} files matched for "{term}" in {root}. Please narrow your search.')
    else:
        s.say(f'Found {sum(counts.values())} matches for "{term}" in {root}:',
              *(f"{p} ({n} matches)" for p, n in sorted(counts.items())),
              f'End of matches for "{term}" in {root}')
    return 0


def search_file(s: State, args: list[str]) -> int:
    usage = "Usage: search_file <search_term> [<file>]"
    if not args or not args[0]:
        s.say(usage)
        return 0
    if len(args) > 1 and args[1]:
        if not os.path.isfile(args[1]):
            s.say(usage, f"Error: File name {args[1]} not found. Please provide a valid file name.")
            return 0
        path = args[1]
    elif not s.file:
        s.say(NO_FILE)
        return 0
    else:
        path = s.file
    term, path = args[0], os.path.realpath(path)
    matches = [m for m in grep("-n", term, [path]) if re.match(r"[0-9]+:", m)]
    if not matches:
        s.say(f'No matches found for "{term}" in {path}')
        return 0
    s.say(f'Found {len(matches)} matches for "{term}" in {path}:',
          *(f"Line {m.split(':', 1)[0]}:{m.split(':', 1)[1]}" for m in matches),
          f'End of matches for "{term}" in {path}')
    return 0


def find_file(s: State, args: list[str]) -> int:
    found = directory(s, args, "Usage: find_file <file_name> [<dir>]")
    if found is None:
        return 0
    name, root = found
    matches = [p for p in files_under(root) if fnmatch.fnmatchcase(os.path.basename(p), name)]
    if not matches:
        s.say(f'No matches found for "{name}" in {root}')
    else:
        s.say(f'Found {len(matches)} matches for "{name}" in {root}:', *matches)
    return 0


# --- the entry point -----------------------------------------------------------------------------------


def run(s: State, command: str, args: list[str], text: str = "") -> int:
    """Run one command on the state; its output is in s.out. The exit status is the function's. A file
    that vanished or cannot be read gets one line on stderr, as a shell tool would say it."""
    try:
        return dispatch(s, command, args, text)
    except OSError as exc:
        print(f"{command}: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def dispatch(s: State, command: str, args: list[str], text: str) -> int:
    simple = {"open": open_, "goto": goto, "create": create, "search_dir": search_dir,
              "search_file": search_file, "find_file": find_file}
    if command in simple:
        return simple[command](s, args)
    if command in ("scroll_down", "scroll_up"):
        step = s.window - s.overlap
        return scroll(s, step if command == "scroll_down" else -step)
    if command in ("edit", "insert"):
        return (edit if command == "edit" else insert)(s, args, text)
    s.say(f"unknown command {command}")
    return 127


def main(argv: list[str]) -> int:
    state_file, command, args = argv[0], argv[1], argv[2:]
    s = State.from_env(dict(os.environ))
    text = sys.stdin.read() if command in ("edit", "insert") else ""
    code = run(s, command, args, text)
    out = sys.stdout.buffer
    out.write("".join(f"{line}\n" for line in s.out).encode("utf-8", "surrogateescape"))
    out.flush()
    with open(state_file, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(s.exports())
    return code


if __name__ == "__main__" and len(sys.argv) > 2:
    sys.exit(main(sys.argv[1:]))

"""Insert an import statement where ruff's isort rules would put it (standard library, then third party)."""

from __future__ import annotations

import ast
import sys


def _module(node: ast.Import | ast.ImportFrom) -> str:
    if isinstance(node, ast.ImportFrom):
        return node.module or ""
    return node.names[0].name


def _is_stdlib(node: ast.Import | ast.ImportFrom) -> bool:
    return _module(node).split(".")[0] in sys.stdlib_module_names


def _sort_key(node: ast.Import | ast.ImportFrom) -> tuple[bool, str]:
    # Within a section, `import x` lines come before `from x import y` lines, each sorted by module.
    return isinstance(node, ast.ImportFrom), _module(node).lower()


def _top_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    return [
        node
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom) and _module(node) != "__future__"
    ]


def _after_docstring(tree: ast.Module, lines: list[str]) -> int:
    """The index of the first non-blank line after the module docstring (0 without a docstring)."""
    first = tree.body[0] if tree.body else None
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)):
        return 0
    at = first.end_lineno or 0
    while at < len(lines) and not lines[at].strip():
        at += 1
    return at


def add_import(source: str, statement: str) -> str:
    """`source` with `statement` (one import line) added to its import block, in sorted position."""
    new = ast.parse(statement).body[0]
    assert isinstance(new, ast.Import | ast.ImportFrom)
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return statement + "\n" + source
    imports = _top_imports(tree)
    same_section = [node for node in imports if _is_stdlib(node) == _is_stdlib(new)]
    if same_section:
        later = [node for node in same_section if _sort_key(node) > _sort_key(new)]
        at = later[0].lineno - 1 if later else (same_section[-1].end_lineno or 0)
        lines[at:at] = [statement + "\n"]
    elif imports and _is_stdlib(new):
        at = imports[0].lineno - 1
        lines[at:at] = [statement + "\n", "\n"]
    elif imports:  # a new third-party section after the standard library one
        at = imports[-1].end_lineno or 0
        blank = next((i for i, line in enumerate(lines[at:]) if line.strip()), len(lines) - at)
        if blank >= 2:  # one blank line before the new section, the others stay after it
            lines[at + 1 : at + 1] = [statement + "\n"]
        else:
            lines[at:at] = ["\n", statement + "\n"] + (["\n"] if blank == 0 else [])
    else:
        at = _after_docstring(tree, lines)
        lines[at:at] = [statement + "\n", "\n"]
    return "".join(lines)

"""The offline Hub mirror, built once per test session (a minute and a half) for the tests that run
`gymforge run` on embedded defaults: each run then serves it on its own free port, as `run` does.
GYMFORGE_TEST_MIRROR names a mirror already built to use instead (local runs; CI builds its own)."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from bus.server import free_port

_LOCK = threading.Lock()
_ROOT: list[Path] = []


def session_mirror() -> Path:
    from hubmirror.build import build_mirror

    with _LOCK:
        if not _ROOT:
            given = os.environ.get("GYMFORGE_TEST_MIRROR")
            root = Path(given) if given else Path(tempfile.mkdtemp(prefix="gf-test-mirror-")) / "hub-mirror"
            build_mirror(root)  # a mirror already built is only read
            _ROOT.append(root)
        return _ROOT[0]


def mirror_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """Settings for a `gymforge run` subprocess: the session's mirror on a free port, unless the test set a
    Hub of its own."""
    env = dict(env or {})
    if not {"HF_ENDPOINT", "GYMFORGE_HF_ENDPOINT", "GYMFORGE_HF_MIRROR_DIR"} & set(env):
        env["GYMFORGE_HF_MIRROR_DIR"] = str(session_mirror())
        env.setdefault("GYMFORGE_HF_MIRROR_PORT", str(free_port()))
    return env

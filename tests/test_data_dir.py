"""The data dir check at start-up: agents starting side by side in one data dir must not trip each other
(the chaos run saw a debugger refuse to start: another process had removed the shared probe file)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gymforge import config
from gymforge.app import ensure_data_dir
from gymforge.errors import UserError


def test_concurrent_checks_of_one_data_dir_all_pass(tmp_path: Path) -> None:
    s = config.load({"data_dir": tmp_path / "data"}, environ={})

    def check(_: int) -> Path:
        return ensure_data_dir(s)

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(check, range(2000))) == {tmp_path / "data"}
    assert list((tmp_path / "data").iterdir()) == []  # no probe left behind


def test_a_data_dir_that_cannot_be_made_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    s = config.load({"data_dir": tmp_path / "file" / "data"}, environ={})
    with pytest.raises(UserError, match="is not writable"):
        ensure_data_dir(s)

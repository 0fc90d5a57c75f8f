"""Files written atomically look like any other file the user writes."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from harness.storage.files import write_atomic


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_files_get_the_users_umask(tmp_path, mask):
    before = os.umask(mask)
    try:
        write_atomic(tmp_path / "atomic.json", b"{}")
        (tmp_path / "plain.json").write_bytes(b"{}")
    finally:
        os.umask(before)
    mode = stat.S_IMODE((tmp_path / "atomic.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o666 & ~mask
    assert not list(tmp_path.glob(".*.tmp"))

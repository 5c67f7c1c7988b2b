"""harness.files: atomic writes keep the permissions the umask gives."""

from __future__ import annotations

import os

import pytest


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_keep_the_umasks_permissions(tmp_path, umask, mode):
    from harness.files import write_text_atomic

    saved = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(saved)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == mode

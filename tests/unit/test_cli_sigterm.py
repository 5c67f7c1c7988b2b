"""SIGTERM ends a command the way Ctrl-C does, and only while the command runs: a process that
calls the CLI in-process (a test, a notebook) gets its own handler back afterwards."""

from __future__ import annotations

import os
import signal

import pytest

from harness.cli.common import stop_on_sigterm


def test_sigterm_interrupts_the_command_and_the_previous_handler_comes_back():
    seen = []

    def own(signum, frame):
        seen.append(signum)

    before = signal.signal(signal.SIGTERM, own)
    try:
        with pytest.raises(KeyboardInterrupt):
            with stop_on_sigterm():
                os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is own
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_command_that_ends_normally_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_sigterm():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before

"""The invoke command prints the function's response, and only that, on stdout (logs go to stderr)."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from player_sessions_local import invoke

pytestmark = pytest.mark.integration


def test_stdout_holds_only_the_response_even_when_a_logger_was_made_before(capsys, tmp_path):
    # Given a logger made before the command runs, writing to stdout (as one of the tool's imports may make)
    early = logging.getLogger("test_invoke_command.early")
    early.addHandler(logging.StreamHandler(sys.stdout))
    early.setLevel(logging.INFO)
    try:
        # When the health fixture is invoked, and the early logger writes during it
        code = invoke.main(["player_sessions", "events/health.json"])
        early.info("written by the early logger")
    finally:
        early.handlers.clear()
    # Then stdout is the response alone, as JSON
    out = capsys.readouterr()
    assert code == 0
    assert json.loads(out.out)["statusCode"] in (200, 503)
    assert "written by the early logger" in out.err

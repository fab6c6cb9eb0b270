"""The tools attribute CPU to the local Cassandra and Redis through their pid files; a wrong folder silently
reports zero for both (it did once, after the bench became a package)."""

from __future__ import annotations

from pathlib import Path

from player_sessions_local.measure import processes

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def test_the_default_local_folder_is_the_repository_one(monkeypatch):
    assert processes.LOCAL_DIR in {
        REPOSITORY_ROOT / ".local",
        Path(__import__("os").environ.get("LOCAL_DIR", "-")),
    }
    assert (REPOSITORY_ROOT / "pyproject.toml").is_file()


def test_service_pids_reads_each_pid_file(tmp_path, monkeypatch):
    # Given a local folder holding Cassandra's pid file and no Redis one
    (tmp_path / "cassandra").mkdir()
    (tmp_path / "cassandra" / "cassandra.pid").write_text("4242\n")
    monkeypatch.setattr(processes, "LOCAL_DIR", tmp_path)
    # When the pids are read / Then Cassandra's is found and the missing one left out
    assert processes.service_pids() == {"cassandra": 4242}

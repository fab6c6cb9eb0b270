"""The bench attributes CPU to the local Cassandra and Redis through their pid files; a wrong folder silently
reports zero for both (it did once, after the bench became a package)."""

from __future__ import annotations

from pathlib import Path

from player_sessions_local.bench import cpu

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def test_the_default_local_folder_is_the_repository_one():
    assert cpu.REPOSITORY_LOCAL_DIR == REPOSITORY_ROOT / ".local"
    assert (REPOSITORY_ROOT / "pyproject.toml").is_file()


def test_server_pids_reads_each_pid_file(tmp_path, monkeypatch):
    (tmp_path / "cassandra").mkdir()
    (tmp_path / "cassandra" / "cassandra.pid").write_text("4242\n")
    monkeypatch.setattr(
        cpu,
        "SERVER_PID_FILES",
        {"cassandra": tmp_path / "cassandra" / "cassandra.pid", "redis": tmp_path / "redis" / "redis.pid"},
    )
    assert cpu.server_pids() == {"cassandra": 4242}

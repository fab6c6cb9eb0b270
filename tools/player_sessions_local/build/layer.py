"""Builds the dependency layer without Docker: aarch64 wheels for the Lambda's Python, and the shared package.

The runtime dependencies are the ones pyproject.toml lists, at the exact versions uv.lock pins
(``uv export``); they are installed from manylinux aarch64 wheels only (``--only-binary :all:``), never built
from source, with ``uv pip install --python-platform ... --python-version ...``. uv rather than pip because uv
evaluates environment markers for the *target* Python: pip running on this machine's 3.11 would apply
``deprecated==1.3.1; python_full_version < '3.12'`` and friends to a 3.14 runtime. Downloads are cached in
uv's cache; the installed dependencies are reused while the lock, Python version and platform stay the same.

Layout (what Lambda mounts at /opt): ``python/<dependencies>`` and ``python/player_sessions``.

Run: ``uv run python -m player_sessions_local.build.layer`` (``make synth`` and ``make lint`` do it first).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from infra_cdk.constants import (
    LAMBDA_PYTHON_VERSION,
    LAYER_BUILD_DIR,
    LAYER_PLATFORM,
    REPO_ROOT,
    SHARED_PACKAGE_DIR,
)

# `uv run` names its own executable in UV; a bare `uv` from PATH otherwise.
UV = os.environ.get("UV", "uv")
SITE_DIR_NAME = "python"
# Beside the asset, not in it: records what python/ holds without being shipped.
STAMP_SUFFIX = ".dependencies.sha256"
REQUIREMENTS_SUFFIX = ".requirements.txt"
SHARED_PACKAGE_NAME = "player_sessions"
# Console scripts carry this machine's interpreter in their shebang and are of no use in a layer.
UNUSED_DIRS = ("bin",)
IGNORED_FILES = shutil.ignore_patterns("__pycache__", "*.pyc")


class LayerBuildError(RuntimeError):
    """uv could not export the lock or install a dependency for the target platform."""


def runtime_requirements() -> str:
    """The pinned runtime dependencies from uv.lock, without the project, its groups or hashes."""
    return _run(
        [
            UV,
            "export",
            "--frozen",
            "--no-default-groups",
            "--no-emit-project",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
            "--format",
            "requirements-txt",
        ]
    )


def dependencies_fingerprint(requirements: str) -> str:
    recipe = f"{requirements}\n{LAMBDA_PYTHON_VERSION}\n{LAYER_PLATFORM}\nonly-binary"
    return hashlib.sha256(recipe.encode()).hexdigest()


def build_layer(target: Path = LAYER_BUILD_DIR) -> Path:
    """Builds (or refreshes) the layer asset at ``target`` and returns it."""
    site = target / SITE_DIR_NAME
    requirements = runtime_requirements()
    fingerprint = dependencies_fingerprint(requirements)
    stamp = target.with_name(target.name + STAMP_SUFFIX)
    if not (stamp.exists() and stamp.read_text() == fingerprint and site.is_dir()):
        _install_dependencies(requirements, target, site)
        stamp.write_text(fingerprint)
    # The shared package changes far more often than the lock: copied afresh on every build.
    package = site / SHARED_PACKAGE_NAME
    shutil.rmtree(package, ignore_errors=True)
    shutil.copytree(SHARED_PACKAGE_DIR, package, ignore=IGNORED_FILES)
    return target


def _install_dependencies(requirements: str, target: Path, site: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    site.mkdir(parents=True)
    requirements_file = target.with_name(target.name + REQUIREMENTS_SUFFIX)
    requirements_file.write_text(requirements)
    _run(
        [
            UV,
            "pip",
            "install",
            "--target",
            str(site),
            "--python-platform",
            LAYER_PLATFORM,
            "--python-version",
            LAMBDA_PYTHON_VERSION,
            "--only-binary",
            ":all:",
            # The export already lists every transitive dependency at its locked version.
            "--no-deps",
            "--requirements",
            str(requirements_file),
        ]
    )
    for name in UNUSED_DIRS:
        shutil.rmtree(site / name, ignore_errors=True)


def _run(command: list[str]) -> str:
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise LayerBuildError(f"{' '.join(command[1:3])} failed:\n{completed.stderr.strip()}")
    return completed.stdout


def main() -> None:
    path = build_layer()
    print(f"dependency layer ready in {path.relative_to(REPO_ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()

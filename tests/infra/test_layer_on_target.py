"""The built layer on its target: every function's handler module imports on aarch64 Python 3.14 (Debian's,
under qemu-user) with only its own folder and the layer on sys.path, and no shared object in the layer needs
a glibc newer than Lambda's Amazon Linux 2023 (2.34)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from infra_cdk.constants import LAMBDA_PYTHON_VERSION
from infra_cdk.function_definitions import FUNCTION_DEFINITIONS, Deployment
from player_sessions.settings import DatabaseMode
from player_sessions_local.build.target import (
    LAMBDA_GLIBC,
    Target,
    ensure_target,
    glibc_versions_needed,
    shared_objects,
)

IMPORT_SECONDS = 240
"""About 30 s per function under qemu on this 2-core machine, three at once."""

# Runs on the target: what Lambda does at init, with /var/task and /opt/python where the test puts them.
IMPORT_HANDLER = """
import importlib, json, platform, sys
task_root, layer = sys.argv[1], sys.argv[2]
sys.path[:0] = [task_root, layer]
module = importlib.import_module("handler")
files = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
native = sorted(f for f in files if f.endswith(".so"))
print(json.dumps({"machine": platform.machine(), "python": platform.python_version(), "path": sys.path,
                  "module": module.__file__, "callable": callable(module.lambda_handler), "native": native}))
"""


@pytest.fixture(scope="session")
def target() -> Target:
    """Debian's arm64 Python and qemu, unpacked once into .build/aarch64-target (`make test` prepares it)."""
    return ensure_target()


@pytest.fixture(scope="session")
def imports_on_target(target: Target, layer_dir: Path) -> dict[str, dict]:
    """Each function's handler imported in its own interpreter, the three at once, with the environment the
    function is deployed with."""
    deployment = Deployment(
        DatabaseMode.KEYSPACES,
        "eu-west-1",
        "rediss://cache.example:6379/0",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cursor",
        player_hash_secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:player-hash",
    )
    running = {}
    for name, definition in FUNCTION_DEFINITIONS.items():
        environment = {
            **definition.environment(deployment),
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_REGION": "eu-west-1",
            "LAMBDA_TASK_ROOT": str(definition.code_dir),
            "TZ": ":UTC",
        }
        running[name] = subprocess.Popen(
            target.command("-c", IMPORT_HANDLER, str(definition.code_dir), str(layer_dir / "python")),
            env=environment,
            cwd=definition.code_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=IMPORT_SECONDS)
        assert process.returncode == 0, f"{name} did not import on the target:\n{stderr[-3000:]}"
        results[name] = json.loads(stdout.strip().splitlines()[-1])
    return results


@pytest.mark.parametrize("name", sorted(FUNCTION_DEFINITIONS))
def test_every_handler_imports_on_aarch64_python_3_14_with_only_the_layer_on_the_path(
    name: str, imports_on_target: dict[str, dict], target: Target, layer_dir: Path
) -> None:
    # When
    result = imports_on_target[name]

    # Then: the target's interpreter, the function's own handler module, and nothing on sys.path but the
    # function's folder, the layer and the interpreter's standard library
    definition = FUNCTION_DEFINITIONS[name]
    assert result["machine"] == "aarch64"
    assert result["python"].startswith(f"{LAMBDA_PYTHON_VERSION}.")
    assert result["module"] == str(definition.code_dir / "handler.py")
    assert result["callable"] is True
    stdlib = str(target.sysroot / "usr" / "lib")
    assert result["path"][:2] == [str(definition.code_dir), str(layer_dir / "python")]
    assert all(entry.startswith(stdlib) for entry in result["path"][2:])


def test_the_native_extensions_the_handlers_load_are_the_layers_aarch64_builds(
    imports_on_target: dict[str, dict], layer_dir: Path
) -> None:
    # When
    native = {
        Path(path)
        for result in imports_on_target.values()
        for path in result["native"]
        if path.startswith(str(layer_dir))
    }

    # Then: pydantic-core and the Cassandra driver's libev loop came from the layer, built for aarch64
    names = {path.name for path in native}
    tag = f"cpython-{LAMBDA_PYTHON_VERSION.replace('.', '')}-aarch64-linux-gnu.so"
    assert any(n.startswith("_pydantic_core.") and n.endswith(tag) for n in names), names
    assert any(n.startswith("libevwrapper.") and n.endswith(tag) for n in names), names


def test_no_shared_object_in_the_layer_needs_a_glibc_newer_than_amazon_linux_2023(layer_dir: Path) -> None:
    # Given
    libraries = shared_objects(layer_dir / "python")

    # When
    needed = {library.relative_to(layer_dir): glibc_versions_needed(library) for library in libraries}

    # Then: every one asks for GLIBC_2.34 at most (manylinux2014 wheels ask for 2.17), and the check did read
    # the version needs (most libraries name at least one)
    assert len(libraries) > 10
    too_new = {
        str(path): max(versions)
        for path, versions in needed.items()
        if versions and max(versions) > LAMBDA_GLIBC
    }
    assert too_new == {}
    highest = max(version for versions in needed.values() for version in versions)
    assert (2, 17) <= highest <= LAMBDA_GLIBC
    assert sum(1 for versions in needed.values() if versions) > len(libraries) // 2

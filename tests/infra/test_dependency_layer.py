"""The dependency layer holds aarch64 wheels for the Lambda's Python (built here without Docker) and the
shared player_sessions package, under python/ where Lambda puts it on sys.path."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra_cdk.constants import LAMBDA_PYTHON_VERSION, SHARED_PACKAGE_DIR
from player_sessions_local.build.layer import runtime_requirements

ELF_MAGIC = b"\x7fELF"
EM_AARCH64 = 183
CPYTHON_TAG = "cp" + LAMBDA_PYTHON_VERSION.replace(".", "")  # cp314
LAMBDA_ENVIRONMENT = {
    "python_version": LAMBDA_PYTHON_VERSION,
    "python_full_version": f"{LAMBDA_PYTHON_VERSION}.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "aarch64",
    "os_name": "posix",
}


def wheel_tags(dist_info: Path) -> list[str]:
    return [
        line.removeprefix("Tag: ")
        for line in (dist_info / "WHEEL").read_text().splitlines()
        if line.startswith("Tag: ")
    ]


def elf_machine(path: Path) -> int | None:
    header = path.read_bytes()[:20]
    if not header.startswith(ELF_MAGIC):
        return None
    byteorder = "little" if header[5] == 1 else "big"
    return int.from_bytes(header[18:20], byteorder)


def stable_abi(tag: str) -> bool:
    """A wheel built on CPython's stable ABI (``abi3``) for the Lambda Python or an older one runs on it
    (cryptography ships one, for 3.11 and later)."""
    match = re.fullmatch(r"cp3(\d+)-abi3-manylinux\w*_aarch64", tag)
    return match is not None and int(match[1]) <= int(CPYTHON_TAG[3:])


def test_every_wheel_is_pure_python_or_built_for_the_lambda_python_on_aarch64(layer_dir: Path) -> None:
    # When
    tags = {dist_info.name: wheel_tags(dist_info) for dist_info in (layer_dir / "python").glob("*.dist-info")}

    # Then
    assert tags, "the layer holds no installed distribution"
    for name, wheel in tags.items():
        pure = all(tag.endswith("-none-any") for tag in wheel) and any(tag.startswith("py3") for tag in wheel)
        binary = all(
            re.fullmatch(rf"{CPYTHON_TAG}-(abi3|{CPYTHON_TAG})-manylinux\w*_aarch64", tag) or stable_abi(tag)
            for tag in wheel
        )
        assert pure or binary, f"{name} is neither pure Python nor a {CPYTHON_TAG} aarch64 wheel: {wheel}"
    assert wheel_tags(layer_dir / "python" / "cassandra_driver-3.30.1.dist-info")[0].startswith(
        f"{CPYTHON_TAG}-{CPYTHON_TAG}-manylinux"
    )


def test_every_native_library_is_aarch64_for_the_lambda_python(layer_dir: Path) -> None:
    # When
    libraries = [path for path in (layer_dir / "python").rglob("*.so*") if path.is_file()]
    machines = {path.name: elf_machine(path) for path in libraries}

    # Then
    assert machines and set(machines.values()) == {EM_AARCH64}
    extensions = [name for name in machines if name.endswith(".so") and ".cpython-" in name]
    assert extensions and all(f".cpython-{CPYTHON_TAG[2:]}-aarch64-linux-gnu.so" in n for n in extensions)


def test_cassandra_driver_brings_its_libev_event_loop(layer_dir: Path) -> None:
    """Python 3.12 removed asyncore: without the libev extension (and the libev it bundles) the driver has no
    default connection class."""
    # When
    site = layer_dir / "python"

    # Then
    assert list(
        (site / "cassandra" / "io").glob(f"libevwrapper.cpython-{CPYTHON_TAG[2:]}-aarch64-linux-gnu.so")
    )
    assert list((site / "cassandra_driver.libs").glob("libev-*.so*"))


def test_layer_holds_exactly_the_locked_runtime_dependencies(layer_dir: Path) -> None:
    # Given: the lock's pins whose markers hold on the Lambda runtime
    locked = {
        canonicalize_name(requirement.name): str(requirement.specifier).removeprefix("==")
        for line in runtime_requirements().splitlines()
        if line.strip() and not line.startswith("#")
        for requirement in [Requirement(line)]
        if requirement.marker is None or requirement.marker.evaluate(LAMBDA_ENVIRONMENT)
    }

    # When
    installed = {
        canonicalize_name(name): version
        for dist_info in (layer_dir / "python").glob("*.dist-info")
        for name, version in [dist_info.name.removesuffix(".dist-info").rsplit("-", 1)]
    }

    # Then
    assert installed == locked
    assert {"aws-lambda-powertools", "pydantic", "cassandra-driver", "cassandra-sigv4", "redis"} <= set(
        installed
    )


def test_layer_ships_the_shared_package_as_python_player_sessions(layer_dir: Path) -> None:
    # When
    shipped = layer_dir / "python" / "player_sessions"

    # Then
    expected = sorted(
        p.relative_to(SHARED_PACKAGE_DIR)
        for p in SHARED_PACKAGE_DIR.rglob("*.py")
        if "__pycache__" not in p.parts
    )
    assert sorted(p.relative_to(shipped) for p in shipped.rglob("*.py")) == expected
    assert (shipped / "settings.py").read_text() == (SHARED_PACKAGE_DIR / "settings.py").read_text()
    assert not list(shipped.rglob("__pycache__"))
    assert not (layer_dir / "python" / "bin").exists()

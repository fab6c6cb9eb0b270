"""The dependency layer on its target, without Docker and without an arm64 machine: Debian's arm64 Python (the
Lambda runtime's version) and its libraries unpacked into a sysroot, run under qemu-user, and the glibc
versions the layer's shared objects need, read with ``readelf -V``.

Nothing is installed on the system: a private APT configuration (its own state, cache and sources, both
architectures) downloads the packages, ``dpkg-deb -x`` unpacks them into ``.build/aarch64-target/``
(git-ignored).
The first run downloads about 85 MB (the interpreter's packages and qemu-user) in seconds and unpacks them in
under a minute; later runs reuse the sysroot while the recipe is unchanged.

Run: ``uv run python -m player_sessions_local.build.target`` (``make test-infra`` does it before the tests).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infra_cdk.constants import LAMBDA_PYTHON_VERSION, REPO_ROOT

TARGET_DIR = REPO_ROOT / ".build" / "aarch64-target"
LAMBDA_GLIBC = (2, 34)
"""The glibc of Amazon Linux 2023, which the Python 3.12+ runtimes run on."""
PYTHON_PACKAGE = f"python{LAMBDA_PYTHON_VERSION}"
PYTHON_SUITE = "sid"
"""Debian's arm64 python3.14 is in sid only (trixie has 3.13); its libc (2.4x) is newer than Lambda's, which
is why the glibc check reads the layer's own requirements instead of trusting a clean import."""
QEMU_PACKAGE = "qemu-user"
QEMU_SUITE = "trixie"
"""Statically linked (qemu-user-static is only a transitional package there)."""
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
_GLIBC_NEED = re.compile(r"Name: GLIBC_(\d+)\.(\d+)(?:\.(\d+))?")


class TargetSetupError(RuntimeError):
    """The sysroot could not be built (no apt-get or dpkg-deb, no Debian keyring, a download failed)."""


@dataclass(frozen=True)
class Target:
    qemu: Path
    sysroot: Path

    @property
    def python(self) -> Path:
        return self.sysroot / "usr" / "bin" / PYTHON_PACKAGE

    def command(self, *arguments: str) -> list[str]:
        """Runs the target's Python under qemu, isolated (-I) and without site (-S): sys.path is the
        standard library and whatever the code adds."""
        return [str(self.qemu), "-L", str(self.sysroot), str(self.python), "-I", "-S", *arguments]


def ensure_target(directory: Path = TARGET_DIR) -> Target:
    """The cached sysroot and qemu, built first if missing or made from another recipe."""
    target = Target(qemu=directory / "qemu-aarch64", sysroot=directory / "sysroot")
    stamp = directory / "recipe.sha256"
    recipe = _recipe(_mirror())
    fingerprint = hashlib.sha256(recipe.encode()).hexdigest()
    built = target.python.is_file() and target.qemu.is_file()
    if built and stamp.is_file() and stamp.read_text() == fingerprint:
        return target
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise TargetSetupError(f"{tool} is missing: the aarch64 sysroot is built from Debian's packages")
    if not KEYRING.is_file():
        raise TargetSetupError(f"{KEYRING} is missing (apt-get install debian-archive-keyring)")
    shutil.rmtree(directory, ignore_errors=True)
    apt = _PrivateApt(directory / "apt", _mirror())
    apt.update()
    packages = apt.arm64_closure(PYTHON_PACKAGE)
    debs = apt.download([*packages, f"{QEMU_PACKAGE}/{QEMU_SUITE}"])
    target.sysroot.mkdir(parents=True)
    for deb in debs:
        if deb.name.startswith(f"{QEMU_PACKAGE}_"):
            _unpack_qemu(deb, target.qemu)
        else:
            _run(["dpkg-deb", "-x", str(deb), str(target.sysroot)])
    for name in ("bin", "lib", "sbin"):  # merged /usr: the interpreter asks for /lib/ld-linux-aarch64.so.1
        if not (target.sysroot / name).exists():
            (target.sysroot / name).symlink_to(f"usr/{name}")
    shutil.rmtree(directory / "apt")
    stamp.write_text(fingerprint)
    return target


def _recipe(mirror: str) -> str:
    return f"{mirror}\n{PYTHON_PACKAGE}/{PYTHON_SUITE}\n{QEMU_PACKAGE}/{QEMU_SUITE}\n"


def _mirror() -> str:
    """The Debian mirror this machine's own APT sources name (deb.debian.org if none)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for source in sources:
        try:
            text = source.read_text()
        except OSError:
            continue
        match = re.search(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+/debian)/?\s", text, re.MULTILINE)
        if match:
            return match.group(1)
    return DEFAULT_MIRROR


class _PrivateApt:
    """apt-get and apt-cache with their own state, cache and sources: the system's APT is not touched."""

    def __init__(self, directory: Path, mirror: str) -> None:
        self.directory = directory
        for sub in (
            "state/lists/partial",
            "cache/archives/partial",
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/sources.list.d",
            "debs",
        ):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / "state" / "status").touch()
        options = f"arch=amd64,arm64 signed-by={KEYRING}"
        (directory / "sources.list").write_text(
            "".join(f"deb [{options}] {mirror} {suite} main\n" for suite in (QEMU_SUITE, PYTHON_SUITE))
        )
        self.config = directory / "apt.conf"
        self.config.write_text(f'''Dir::State "{directory}/state";
Dir::State::status "{directory}/state/status";
Dir::Cache "{directory}/cache";
Dir::Etc::SourceList "{directory}/sources.list";
Dir::Etc::SourceParts "{directory}/etc/sources.list.d";
Dir::Etc::Parts "{directory}/etc/apt.conf.d";
Dir::Etc::PreferencesParts "{directory}/etc/preferences.d";
Dir::Etc::Preferences "{directory}/etc/preferences";
APT::Architecture "amd64";
APT::Architectures {{ "amd64"; "arm64"; }};
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
Debug::NoLocking "true";
''')

    def update(self) -> None:
        _run(["apt-get", "-c", str(self.config), "-qq", "update"])

    def arm64_closure(self, package: str) -> list[str]:
        """The arm64 packages ``package`` depends on, recursively, with it (no recommends, no virtuals)."""
        output = _run(
            [
                "apt-cache",
                "-c",
                str(self.config),
                "depends",
                "--recurse",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
                f"{package}:arm64",
            ]
        )
        lines = output.splitlines()
        return sorted({line for line in lines if line.endswith(":arm64") and not line.startswith((" ", "<"))})

    def download(self, packages: list[str]) -> list[Path]:
        debs = self.directory / "debs"
        _run(["apt-get", "-c", str(self.config), "-qq", "download", *packages], cwd=debs)
        return sorted(debs.glob("*.deb"))


def _unpack_qemu(deb: Path, destination: Path) -> None:
    """Only qemu-aarch64 is kept: the package holds every architecture's emulator (about 450 MB)."""
    scratch = destination.parent / "qemu-unpacked"
    _run(["dpkg-deb", "-x", str(deb), str(scratch)])
    shutil.move(scratch / "usr" / "bin" / "qemu-aarch64", destination)
    shutil.rmtree(scratch)


def _run(command: list[str], cwd: Path | None = None) -> str:
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise TargetSetupError(f"{' '.join(command[:4])} ... failed:\n{completed.stderr.strip()[-2000:]}")
    return completed.stdout


# --- The glibc the layer needs ----------------------------------------------------------------------------


def shared_objects(site: Path) -> list[Path]:
    return sorted(
        path
        for path in site.rglob("*.so*")
        if path.is_file() and not path.is_symlink() and path.read_bytes()[:4] == b"\x7fELF"
    )


def glibc_versions_needed(library: Path) -> set[tuple[int, ...]]:
    """The GLIBC_x.y symbol versions a shared object needs (its .gnu.version_r section), by ``readelf -V``."""
    output = _run(["readelf", "-V", "--wide", str(library)])
    needs = output.split("Version needs section", 1)
    if len(needs) == 1:
        return set()
    return {
        tuple(int(part) for part in match.groups() if part is not None)
        for match in _GLIBC_NEED.finditer(needs[1])
    }


def main() -> None:
    target = ensure_target()
    print(f"aarch64 target ready: {target.python} under {target.qemu}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""The system parts `labreport setup` installs through Debian's apt: the host's packages (ctr,
buildah, hyperfine, hey, the shim build's libraries, the C lab's clang to WASI), and the private
engine's packages, fetched with an apt configuration of labreport's own (its lists and cache in
the state directory) and unpacked with dpkg-deb, never installed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import engine_layout, paths, proc

# containerd (ctr), buildah, hyperfine and hey are measured with; the -dev packages and protoc
# build the shims; clang, lld, wasi-libc and the wasm32 runtime build the C lab natively and to
# WASI. pipx installs labreport as a tool.
APT_PACKAGES = (
    "containerd", "buildah", "hyperfine", "hey", "pkg-config", "libseccomp-dev",
    "libsystemd-dev", "libdbus-1-dev", "protobuf-compiler", "clang", "lld-14", "wasi-libc",
    "libclang-rt-14-dev-wasm32", "pipx",
)  # fmt: skip
BROWSER_PACKAGES = ("chromium", "chromium-driver")  # `labreport setup --browser`: tests only
# What doctor checks on a system without apt: the commands those packages give.
COMMANDS = ("ctr", "buildah", "hyperfine", "hey", "clang", "pipx")
ENGINE_SUITE = os.environ.get("LABREPORT_ENGINE_SUITE", "trixie")
ENGINE_PACKAGES = ("docker.io", "containerd")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
APT_UPDATE_TIMEOUT_S = 600
APT_INSTALL_TIMEOUT_S = 1200


def has_apt() -> bool:
    return paths.which("apt-get") is not None and paths.which("dpkg-query") is not None


def as_root() -> list[str] | None:
    """The prefix that runs a command as root: none for root, `sudo -n` where it needs no
    password, else None (the step is skipped and says so)."""
    if paths.is_root():
        return []
    if paths.which("sudo") is not None:
        done = proc.run(["sudo", "-n", "true"], timeout_s=10, check=False)
        if done.returncode == 0:
            return ["sudo", "-n"]
    return None


def missing(packages: Sequence[str] = APT_PACKAGES) -> list[str]:
    """The packages dpkg does not have installed."""
    absent = []
    for package in packages:
        done = proc.run(["dpkg-query", "-W", "-f=${Status}", package], timeout_s=30, check=False)
        if "install ok installed" not in done.stdout:
            absent.append(package)
    return absent


def install(packages: Sequence[str], runner: list[str]) -> None:
    """apt-get update and install, non-interactively, each within its time."""
    proc.run(
        [*runner, "apt-get", "update", "-qq"],
        timeout_s=APT_UPDATE_TIMEOUT_S,
        what="apt-get update",
        hint="check the network to Debian's mirrors",
    )
    proc.run(
        [*runner, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
         "--no-install-recommends", *packages],
        timeout_s=APT_INSTALL_TIMEOUT_S,
        what=f"apt-get install {' '.join(packages)}",
        hint="run the same apt-get install by hand to see why",
    )  # fmt: skip


def engine_present() -> str:
    """The unpacked private engine's version line, or '' when it is not unpacked for this
    suite."""
    layout = engine_layout.layout()
    stamp = layout.root / "pkg.stamp"
    wanted = f"{ENGINE_SUITE} {' '.join(ENGINE_PACKAGES)}"
    try:
        stamped = stamp.read_text().strip()
    except OSError:
        return ""
    if stamped != wanted or not layout.dockerd.is_file():
        return ""
    return engine_layout.version()


def _mirror() -> str:
    """The Debian mirror the system's own apt sources name (deb822 or one-line form)."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        uri = ""
        for line in sources.read_text(errors="replace").splitlines():
            if line.startswith("URIs:"):
                uri = line.split()[1] if len(line.split()) > 1 else ""
            if line.startswith("Suites:") and "security" not in line and uri:
                return uri
    with_list = Path("/etc/apt/sources.list")
    if with_list.is_file():
        for line in with_list.read_text(errors="replace").splitlines():
            words = line.split()
            if words[:1] == ["deb"] and "security" not in line:
                return next((w for w in words[1:] if "://" in w), "")
    return ""


def fetch_engine() -> str:
    """Debian ENGINE_SUITE's docker.io and containerd downloaded and unpacked into the state
    directory (private apt lists; nothing installed); returns dockerd's version line."""
    mirror = _mirror()
    if not mirror:
        raise LabreportError(
            "no Debian mirror found in the system's apt sources",
            "the private engine is fetched from Debian's mirrors; without one it is unavailable",
        )
    root = engine_layout.home()
    apt_dir, debs, unpacked = root / "apt", root / "debs", root / "pkg.tmp"
    for folder in (debs, unpacked):
        shutil.rmtree(folder, ignore_errors=True)
    for folder in (apt_dir / "lists" / "partial", apt_dir / "cache" / "archives" / "partial",
                   debs, unpacked):  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.list").write_text(
        f"deb [signed-by={KEYRING}] {mirror} {ENGINE_SUITE} main\n"
    )
    private = [
        "-o", f"Dir::Etc::SourceList={apt_dir / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={apt_dir / 'none'}",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}",
        "-o", f"Dir::Cache={apt_dir / 'cache'}",
        "-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1",
    ]  # fmt: skip
    proc.run(
        ["apt-get", *private, "update", "-qq"],
        timeout_s=APT_UPDATE_TIMEOUT_S,
        what=f"fetching Debian {ENGINE_SUITE}'s package lists",
        hint="check the network to Debian's mirrors",
    )
    proc.run(
        ["apt-get", *private, "download", "-qq", *ENGINE_PACKAGES],
        timeout_s=900,
        cwd=debs,
        what=f"downloading {' '.join(ENGINE_PACKAGES)} from Debian {ENGINE_SUITE}",
        hint="check the network to Debian's mirrors",
    )
    for deb in sorted(debs.glob("*.deb")):
        proc.run(
            ["dpkg-deb", "-x", str(deb), str(unpacked)], timeout_s=300, what=f"unpacking {deb}"
        )
    shutil.rmtree(root / "pkg", ignore_errors=True)
    unpacked.rename(root / "pkg")
    shutil.rmtree(debs, ignore_errors=True)
    (root / "pkg.stamp").write_text(f"{ENGINE_SUITE} {' '.join(ENGINE_PACKAGES)}\n")
    return engine_layout.version()

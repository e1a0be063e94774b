"""The one change labreport makes to a dependency of its shims, made where the shims are built.

containerd-shimkit (runwasi's task service, under containerd-shim-wasm) runs a container's OCI
prestart hooks a second time at the end of its Create handler, after libcontainer ran them while
it made the container, as runc does. Docker 26 puts one there, `libnetwork-setkey`: a re-exec of
dockerd that keys the container's network sandbox. Its second run cost every WASM start through
Docker about 42 ms that runc does not pay (the engine's debug log: "call prehook before the
start", then dockerd's "sandbox set key processing" 41.6 and 42.1 ms later, before containerd
got its answer). Docker 28 dropped the hook; the double run stays for any hook.

So the shims are not built from the checkout's (or the wheel's) crate folder itself but from a
copy in the state directory, whose manifest patches containerd-shimkit with the published crate
(cargo's own download, its checksum checked against Cargo.lock) with that second call taken
out. Nothing else differs. Files are rewritten only when their content changes, so cargo's
fingerprints hold and a warm build stays a no-op.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import tomllib
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import fsutil, paths, proc

CRATE = "containerd-shimkit"
PATCHED_FILE = "src/sandbox/shim/local.rs"
SECOND_RUN = (
    '        debug!("call prehook before the start");\n'
    "        oci::setup_prestart_hooks(spec.hooks())?;\n"
)
INSTEAD = (
    "        // labreport: the prestart hooks ran once already, in libcontainer's create (as\n"
    "        // runc runs them); a second run here cost Docker's WASM starts a dockerd re-exec.\n"
)
FETCH_TIMEOUT_S = 1800


def build_dir() -> Path:
    return paths.state_dir() / "shim-build"


def _locked(lock: Path) -> tuple[str, str]:
    """The version and checksum of CRATE in the shim's Cargo.lock."""
    for package in tomllib.loads(lock.read_text())["package"]:
        if package["name"] == CRATE:
            return str(package["version"]), str(package["checksum"])
    raise LabreportError(f"{lock} has no {CRATE}", "the shim crate is not labreport's own")


def _cargo_home() -> Path:
    return Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")


def _downloaded(manifest: Path, version: str, checksum: str) -> bytes:
    """The published .crate, as cargo fetched it for this lock file, checked by its checksum."""
    proc.run(
        ["cargo", "fetch", "--locked", "--manifest-path", str(manifest)],
        timeout_s=FETCH_TIMEOUT_S, what="cargo fetch (the shims' dependencies)",
    )  # fmt: skip
    name = f"{CRATE}-{version}.crate"
    for found in sorted((_cargo_home() / "registry" / "cache").glob(f"*/{name}")):
        data = found.read_bytes()
        if hashlib.sha256(data).hexdigest() == checksum:
            return data
    raise LabreportError(
        f"cargo fetched no {name} with the checksum Cargo.lock names",
        f"remove {_cargo_home() / 'registry' / 'cache'}/*/{name} and run setup again",
    )


def _write(path: Path, data: bytes) -> None:
    """Writes path only when its content differs (cargo fingerprints path crates by mtime)."""
    if path.is_file() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fsutil.atomic_write_bytes(path, data)


def _sync(into: Path, files: dict[str, bytes]) -> None:
    """into holds exactly files (relative path -> content): changed ones written, others gone."""
    for relative, content in files.items():
        _write(into / relative, content)
    if into.is_dir():
        for stale in [p for p in into.rglob("*") if p.is_file()]:
            if str(stale.relative_to(into)) not in files:
                stale.unlink()


def _patched_crate(data: bytes, version: str, into: Path) -> None:
    """The crate's files under into, with the second run of the prestart hooks taken out."""
    prefix = f"{CRATE}-{version}/"
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            relative = member.name[len(prefix) :]
            if relative.startswith("/") or ".." in Path(relative).parts:
                raise LabreportError(
                    f"{CRATE} {version} holds a path outside it: {member.name}",
                    "the published crate is not what cargo should have fetched",
                )
            extracted = archive.extractfile(member)
            assert extracted is not None
            files[relative] = extracted.read()
    source = files.get(PATCHED_FILE, b"").decode()
    if source.count(SECOND_RUN) != 1:
        raise LabreportError(
            f"{CRATE} {version} no longer has the one second run of the prestart hooks "
            f"that labreport takes out ({PATCHED_FILE})",
            "the shim crate's dependencies changed: update labreport/host/shim_patch.py",
        )
    files[PATCHED_FILE] = source.replace(SECOND_RUN, INSTEAD).encode()
    _sync(into, files)


def _patched_lock(text: str) -> str:
    """Cargo.lock with CRATE as the path crate it is patched to: no source, no checksum."""
    blocks = text.split("\n[[package]]\n")
    for index, block in enumerate(blocks):
        if block.startswith(f'name = "{CRATE}"\n'):
            kept = [
                line for line in block.split("\n")
                if not line.startswith(("source = ", "checksum = "))
            ]  # fmt: skip
            blocks[index] = "\n".join(kept)
    return "\n[[package]]\n".join(blocks)


def prepare(manifest: Path) -> Path:
    """The manifest to build the shims from: a copy of the crate at manifest (its Cargo.toml,
    Cargo.lock and src/) in the state directory, CRATE patched in."""
    crate = manifest.parent
    version, checksum = _locked(crate / "Cargo.lock")
    root = build_dir()
    patched = root / f"{CRATE}-{version}"
    stamp = root / f".{CRATE}-{version}.patched"
    marker = hashlib.sha256(f"{checksum}\n{SECOND_RUN}\n{INSTEAD}".encode()).hexdigest()
    if not (stamp.is_file() and stamp.read_text() == marker and patched.is_dir()):
        _patched_crate(_downloaded(manifest, version, checksum), version, patched)
        _write(stamp, marker.encode())
    copy = root / "shim"
    toml = (crate / "Cargo.toml").read_text()
    toml += f'\n[patch.crates-io]\n{CRATE} = {{ path = "{patched}" }}\n'
    _write(copy / "Cargo.toml", toml.encode())
    _write(copy / "Cargo.lock", _patched_lock((crate / "Cargo.lock").read_text()).encode())
    sources = crate / "src"
    _sync(
        copy / "src",
        {str(p.relative_to(sources)): p.read_bytes() for p in sources.rglob("*") if p.is_file()},
    )
    return copy / "Cargo.toml"


def main() -> int:
    """`python -m labreport.host.shim_patch [MANIFEST]`: prepares the copy and prints its
    manifest (scripts/test runs the shims' cargo tests on what setup builds)."""
    manifest = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("shim/Cargo.toml")
    try:
        print(prepare(manifest.resolve()))
    except LabreportError as error:
        print(f"error: {error.message}\nhint: {error.hint}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The changes labreport makes to dependencies of its shims, made where the shims are built.

Three published crates are patched, each by exact text that must be found once:

- containerd-shimkit (runwasi's task service, under containerd-shim-wasm) runs a container's
  OCI prestart hooks a second time at the end of its Create handler, after libcontainer ran
  them while it made the container, as runc does. Docker 26 puts one there,
  `libnetwork-setkey`: a re-exec of dockerd that keys the container's network sandbox. Its
  second run cost every WASM start through Docker about 42 ms that runc does not pay (the
  engine's debug log: "call prehook before the start", then dockerd's "sandbox set key
  processing" 41.6 and 42.1 ms later, before containerd got its answer). Docker 28 dropped the
  hook; the double run stays for any hook.
- libcgroups (youki's, under libcontainer) moves the container's first process into each cgroup
  v1 hierarchy by writing its pid to `cgroup.procs`. For a pid, the kernel write-locks
  cgroup_threadgroup_rwsem, which waits for an RCU grace period: `perf trace` showed that one
  4-byte write blocking 8 to 14 ms at every start (runc pays it too). The process that moves is
  libcontainer's intermediate process, single-threaded, moving itself; writing 0 to the
  hierarchy's `tasks` file moves the calling thread, which for a single-threaded process is the
  whole process, and the kernel takes no such lock for it ("If we migrate a single thread, we
  don't care about threadgroup stability", kernel/cgroup/cgroup.c). The cgroups are the same;
  any other pid, or a process with more than one thread, is written to `cgroup.procs` as before.
- containerd-shim-wasm connects to containerd at every container's creation and reads the image's
  manifest, looking for wasm layers (the engine's debug log: 3.2 ms before "no WASM layers found
  in OCI image"). Where the container's entrypoint is a regular file in its root filesystem,
  reached without a symlink or `..`, the module is that file: the patched crate then neither
  connects nor reads. Anything else (an image of wasm layers, whose rootfs has no such file) is
  looked up as before.

So the shims are not built from the checkout's (or the wheel's) crate folder itself but from a
copy in the state directory, whose manifest patches those crates with the published ones
(cargo's own download, each checksum checked against Cargo.lock) with those edits made. Nothing
else differs. Files are rewritten only when their content changes, so cargo's fingerprints hold
and a warm build stays a no-op.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import fsutil, paths, proc


@dataclass(frozen=True)
class Edit:
    """old, found exactly once in file (a path in the crate), becomes new."""

    file: str
    old: str
    new: str
    what: str  # what old is, in words, for the error when it is not there once


@dataclass(frozen=True)
class Patch:
    crate: str
    edits: tuple[Edit, ...]


HOOKS_TWICE = Edit(
    "src/sandbox/shim/local.rs",
    '        debug!("call prehook before the start");\n'
    "        oci::setup_prestart_hooks(spec.hooks())?;\n",
    "        // labreport: the prestart hooks ran once already, in libcontainer's create (as\n"
    "        // runc runs them); a second run here cost Docker's WASM starts a dockerd re-exec.\n",
    "the one second run of the prestart hooks",
)
_PROCS_WRITE = "        common::write_cgroup_file(cgroup_path.join(CGROUP_PROCS), pid)?;\n"
_ATTACH = "        common::attach_task(cgroup_path, pid)?;\n"
ATTACH_TASK = (
    Edit("src/v1/controller.rs", _PROCS_WRITE, _ATTACH, "the controllers' write to cgroup.procs"),
    Edit("src/v1/cpuset.rs", _PROCS_WRITE, _ATTACH, "cpuset's write to cgroup.procs"),
    Edit(
        "src/common.rs",
        "#[inline]\npub fn write_cgroup_file<",
        "/// labreport: a single-threaded process moving itself writes 0 to the hierarchy's\n"
        "/// `tasks` (the calling thread moves, without the RCU grace period a pid written to\n"
        "/// cgroup.procs waits for); any other move writes the pid to cgroup.procs.\n"
        "pub fn attach_task(cgroup_path: &Path, pid: Pid) -> Result<(), WrappedIoError> {\n"
        "    let itself_alone = pid == nix::unistd::getpid()\n"
        '        && fs::read_dir("/proc/self/task").is_ok_and(|threads| threads.count() == 1);\n'
        "    if itself_alone {\n"
        '        write_cgroup_file(cgroup_path.join("tasks"), 0)\n'
        "    } else {\n"
        "        write_cgroup_file(cgroup_path.join(CGROUP_PROCS), pid)\n"
        "    }\n"
        "}\n\n"
        "#[inline]\npub fn write_cgroup_file<",
        "write_cgroup_file",
    ),
)
_INSTANCE = "src/sys/unix/container/instance.rs"
LAYERS_WHEN_NEEDED = (
    Edit(
        _INSTANCE,
        "        let oci_client = OCI_CLIENT\n            .get_or_try_init(|| async {\n",
        "        let from_file = labreport_entrypoint_in_rootfs(&cfg.bundle);\n"
        "        let oci_client = if from_file { None } else { Some(OCI_CLIENT\n"
        "            .get_or_try_init(|| async {\n",
        "the containerd client's creation",
    ),
    Edit(
        _INSTANCE,
        "            .await?;\n\n        // check if container is OCI image with wasm layers",
        "            .await?) };\n\n        // check if container is OCI image with wasm layers",
        "the end of the containerd client's creation",
    ),
    Edit(
        _INSTANCE,
        "        let modules = oci_client\n            .load_modules(&id)\n            .await\n",
        "        let modules = match oci_client {\n"
        "            None => Ok(vec![]),\n"
        "            Some(client) => client.load_modules(&id).await,\n"
        "        }\n",
        "the read of the image's wasm layers",
    ),
    Edit(
        _INSTANCE,
        "pub struct Instance<S: Shim> {\n",
        "/// labreport: whether the container's entrypoint (args[0], without a `#function`) is\n"
        "/// a regular file in its root filesystem, every component reached without a symlink or\n"
        "/// `..`; then the module is that file and the image's layers need not be read from\n"
        "/// containerd.\n"
        "fn labreport_entrypoint_in_rootfs(bundle: &std::path::Path) -> bool {\n"
        "    use std::path::Component;\n"
        '    let Ok(spec) = Spec::load(bundle.join("config.json")) else { return false };\n'
        "    let args = spec.process().as_ref().and_then(|process| process.args().as_ref());\n"
        "    let arg0 = args.and_then(|args| args.first());\n"
        "    let (Some(arg0), Some(root)) = (arg0, spec.root().as_ref()) else { return false };\n"
        "    let mut path = bundle.join(root.path());\n"
        "    let file = arg0.split_once('#').map_or(arg0.as_str(), |(file, _)| file);\n"
        "    for part in std::path::Path::new(file).components() {\n"
        "        match part {\n"
        "            Component::RootDir | Component::CurDir => continue,\n"
        "            Component::Normal(name) => path.push(name),\n"
        "            _ => return false,\n"
        "        }\n"
        "        match std::fs::symlink_metadata(&path) {\n"
        "            Ok(meta) if !meta.file_type().is_symlink() => {}\n"
        "            _ => return false,\n"
        "        }\n"
        "    }\n"
        "    std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_file())\n"
        "}\n\n"
        "pub struct Instance<S: Shim> {\n",
        "the Instance type",
    ),
)
PATCHES = (
    Patch("containerd-shimkit", (HOOKS_TWICE,)),
    Patch("libcgroups", ATTACH_TASK),
    Patch("containerd-shim-wasm", LAYERS_WHEN_NEEDED),
)
FETCH_TIMEOUT_S = 1800


def build_dir() -> Path:
    return paths.state_dir() / "shim-build"


def _locked(lock: Path, crates: list[str]) -> dict[str, tuple[str, str]]:
    """The version and checksum of each of crates in the shim's Cargo.lock."""
    found = {
        str(package["name"]): (str(package["version"]), str(package.get("checksum", "")))
        for package in tomllib.loads(lock.read_text())["package"]
        if package["name"] in crates
    }
    for crate in crates:
        if not found.get(crate, ("", ""))[1]:
            raise LabreportError(f"{lock} has no {crate}", "the shim crate is not labreport's own")
    return found


def _cargo_home() -> Path:
    return Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")


def _fetch(manifest: Path) -> None:
    """cargo's own download of every dependency of the lock file."""
    proc.run(
        ["cargo", "fetch", "--locked", "--manifest-path", str(manifest)],
        timeout_s=FETCH_TIMEOUT_S, what="cargo fetch (the shims' dependencies)",
    )  # fmt: skip


def _downloaded(crate: str, version: str, checksum: str) -> bytes:
    """The published .crate, as cargo fetched it, checked by the lock file's checksum."""
    name = f"{crate}-{version}.crate"
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


def _patched_crate(data: bytes, patch: Patch, version: str, into: Path) -> None:
    """The crate's files under into, with the patch's edits made."""
    prefix = f"{patch.crate}-{version}/"
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            relative = member.name[len(prefix) :]
            if relative.startswith("/") or ".." in Path(relative).parts:
                raise LabreportError(
                    f"{patch.crate} {version} holds a path outside it: {member.name}",
                    "the published crate is not what cargo should have fetched",
                )
            extracted = archive.extractfile(member)
            assert extracted is not None
            files[relative] = extracted.read()
    for edit in patch.edits:
        source = files.get(edit.file, b"").decode()
        if source.count(edit.old) != 1:
            raise LabreportError(
                f"{patch.crate} {version} no longer has {edit.what} that labreport changes, "
                f"once, in {edit.file}",
                "the shim crate's dependencies changed: update labreport/host/shim_patch.py",
            )
        files[edit.file] = source.replace(edit.old, edit.new).encode()
    _sync(into, files)


def _patched_lock(text: str, crates: set[str]) -> str:
    """Cargo.lock with the crates as the path crates they are patched to: no source, no
    checksum."""
    blocks = text.split("\n[[package]]\n")
    for index, block in enumerate(blocks):
        if block.split("\n", 1)[0].removeprefix("name = ").strip('"') in crates:
            kept = [
                line for line in block.split("\n")
                if not line.startswith(("source = ", "checksum = "))
            ]  # fmt: skip
            blocks[index] = "\n".join(kept)
    return "\n[[package]]\n".join(blocks)


def _marker(patch: Patch, checksum: str) -> str:
    """What a patched crate's folder was made from: the published crate and the edits."""
    text = "\n".join([checksum, *(f"{e.file}\n{e.old}\n{e.new}" for e in patch.edits)])
    return hashlib.sha256(text.encode()).hexdigest()


def prepare(manifest: Path) -> Path:
    """The manifest to build the shims from: a copy of the crate at manifest (its Cargo.toml,
    Cargo.lock and src/) in the state directory, every crate of PATCHES patched in."""
    crate = manifest.parent
    root = build_dir()
    toml = (crate / "Cargo.toml").read_text() + "\n[patch.crates-io]\n"
    fetched = False
    locked = _locked(crate / "Cargo.lock", [patch.crate for patch in PATCHES])
    for patch in PATCHES:
        version, checksum = locked[patch.crate]
        patched = root / f"{patch.crate}-{version}"
        stamp = root / f".{patch.crate}-{version}.patched"
        marker = _marker(patch, checksum)
        if not (stamp.is_file() and stamp.read_text() == marker and patched.is_dir()):
            if not fetched:
                _fetch(manifest)
                fetched = True
            _patched_crate(_downloaded(patch.crate, version, checksum), patch, version, patched)
            _write(stamp, marker.encode())
        toml += f'{patch.crate} = {{ path = "{patched}" }}\n'
    copy = root / "shim"
    _write(copy / "Cargo.toml", toml.encode())
    lock = _patched_lock((crate / "Cargo.lock").read_text(), {p.crate for p in PATCHES})
    _write(copy / "Cargo.lock", lock.encode())
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

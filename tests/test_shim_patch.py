"""The patched dependencies of the shims: each edit made where its text is, once, and nothing
else, or a clear error when the published crate no longer has it (synthetic crates stand in
for them here)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from labreport.errors import LabreportError
from labreport.host import shim_patch

LOCK = """version = 4

[[package]]
name = "anyhow"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aa"

[[package]]
name = "containerd-shimkit"
version = "0.1.2"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "bb"
dependencies = [
 "anyhow",
]

[[package]]
name = "libcgroups"
version = "0.6.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "cc"
"""
SHIMKIT, CGROUPS, SHIM_WASM = shim_patch.PATCHES
HOOKS = shim_patch.HOOKS_TWICE


def crate(files: dict[str, str], name: str = "containerd-shimkit", version: str = "0.1.2") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"{name}-{version}/{path}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_the_lock_names_the_patched_crates_as_path_crates_and_nothing_else_changes() -> None:
    patched = shim_patch._patched_lock(LOCK, {p.crate for p in shim_patch.PATCHES})
    registry = 'source = "registry+https://github.com/rust-lang/crates.io-index"\n'
    expected = LOCK.replace(f'{registry}checksum = "bb"\n', "")
    assert patched == expected.replace(f'{registry}checksum = "cc"\n', "")
    assert 'checksum = "aa"' in patched


def test_only_the_second_run_of_the_hooks_is_taken_out(tmp_path: Path) -> None:
    before = "fn task_create() {\n" + HOOKS.old + "        Ok(())\n}\n"
    data = crate({HOOKS.file: before, "Cargo.toml": "[package]\n"})
    shim_patch._patched_crate(data, SHIMKIT, "0.1.2", tmp_path)
    after = (tmp_path / HOOKS.file).read_text()
    assert after == before.replace(HOOKS.old, HOOKS.new)
    assert (tmp_path / "Cargo.toml").read_text() == "[package]\n"
    mtime = (tmp_path / "Cargo.toml").stat().st_mtime_ns
    (tmp_path / "stale.rs").write_text("left from another version")
    shim_patch._patched_crate(
        data, SHIMKIT, "0.1.2", tmp_path
    )  # again: unchanged files stay as they are
    assert (tmp_path / "Cargo.toml").stat().st_mtime_ns == mtime
    assert not (tmp_path / "stale.rs").exists()


@pytest.mark.parametrize("times", [0, 2])
def test_a_crate_without_exactly_one_such_call_is_refused(times: int, tmp_path: Path) -> None:
    source = "fn f() {\n" + HOOKS.old * times + "}\n"
    with pytest.raises(LabreportError, match="no longer has the one second run"):
        shim_patch._patched_crate(crate({HOOKS.file: source}), SHIMKIT, "0.1.2", tmp_path)


def test_a_crate_with_a_path_out_of_it_is_refused(tmp_path: Path) -> None:
    data = crate({"../escape.rs": "x", HOOKS.file: HOOKS.old})
    with pytest.raises(LabreportError, match="holds a path outside it"):
        shim_patch._patched_crate(data, SHIMKIT, "0.1.2", tmp_path)
    assert not (tmp_path.parent / "escape.rs").exists()


def test_libcgroups_moves_a_process_by_the_helper_and_the_helper_is_added(tmp_path: Path) -> None:
    write = shim_patch._PROCS_WRITE
    files = {
        "src/v1/controller.rs": f"fn add_task() {{\n{write}        Ok(())\n}}\n",
        "src/v1/cpuset.rs": f"fn add_task() {{\n        ensure();\n{write}        Ok(())\n}}\n",
        "src/common.rs": "use x;\n\n#[inline]\npub fn write_cgroup_file<P>() {}\n",
    }
    shim_patch._patched_crate(crate(files, "libcgroups", "0.6.0"), CGROUPS, "0.6.0", tmp_path)
    for rust in ("src/v1/controller.rs", "src/v1/cpuset.rs"):
        text = (tmp_path / rust).read_text()
        assert write not in text
        assert text == files[rust].replace(
            write, "        common::attach_task(cgroup_path, pid)?;\n"
        )
    common = (tmp_path / "src/common.rs").read_text()
    assert common.startswith("use x;\n\n/// labreport:")
    assert 'cgroup_path.join("tasks"), 0' in common
    assert common.endswith("}\n\n#[inline]\npub fn write_cgroup_file<P>() {}\n")


def test_a_changed_edit_marks_the_patched_crate_stale() -> None:
    moved = shim_patch.Patch("libcgroups", (*CGROUPS.edits[:2], HOOKS))
    assert shim_patch._marker(CGROUPS, "cc") == shim_patch._marker(CGROUPS, "cc")
    assert shim_patch._marker(CGROUPS, "cc") != shim_patch._marker(CGROUPS, "dd")
    assert shim_patch._marker(CGROUPS, "cc") != shim_patch._marker(moved, "cc")


def test_the_image_layers_are_read_only_where_the_entrypoint_is_no_file(tmp_path: Path) -> None:
    """containerd-shim-wasm's Instance::new as published (the parts the edits touch, in order):
    the containerd client is made and the layers read only when the helper says no."""
    before = (
        "pub struct Instance<S: Shim> {\n    id: String,\n}\n\n"
        "    async fn new(id: String, cfg: &InstanceConfig) -> Result<Self, SandboxError> {\n"
        "        let oci_client = OCI_CLIENT\n            .get_or_try_init(|| async {\n"
        "                connect().await\n            })\n            .await?;\n\n"
        "        // check if container is OCI image with wasm layers and read the module\n"
        "        let modules = oci_client\n            .load_modules(&id)\n            .await\n"
        "            .unwrap_or_else(|e| vec![]);\n"
    )
    instance = "src/sys/unix/container/instance.rs"
    data = crate({instance: before}, "containerd-shim-wasm", "1.0.1")
    shim_patch._patched_crate(data, SHIM_WASM, "1.0.1", tmp_path)
    after = (tmp_path / instance).read_text()
    assert after.index("fn labreport_entrypoint_in_rootfs(") < after.index("pub struct Instance")
    assert "let from_file = labreport_entrypoint_in_rootfs(&cfg.bundle);\n" in after
    assert "if from_file { None } else { Some(OCI_CLIENT" in after
    assert "            .await?) };\n" in after
    assert (
        "None => Ok(vec![])," in after
        and "Some(client) => client.load_modules(&id).await," in after
    )
    assert after.endswith("        }\n            .unwrap_or_else(|e| vec![]);\n")
    assert after.count("{") - after.count("}") == before.count("{") - before.count("}")


def test_the_lock_is_read_once_for_every_patched_crate_and_a_missing_one_is_refused(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "Cargo.lock"
    lock.write_text(LOCK)
    crates = ["containerd-shimkit", "libcgroups"]
    assert shim_patch._locked(lock, crates) == {
        "containerd-shimkit": ("0.1.2", "bb"),
        "libcgroups": ("0.6.0", "cc"),
    }
    with pytest.raises(LabreportError, match="has no containerd-shim-wasm"):
        shim_patch._locked(lock, [*crates, "containerd-shim-wasm"])

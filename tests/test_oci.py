"""The OCI wasm image that labreport writes: the layout containerd imports, byte-reproducible."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from labreport.build import oci

MODULE = b"\0asm\x01\0\0\0" + bytes(range(256)) * 40


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_layout_is_a_wasi_wasm_image_with_the_module_as_entrypoint(tmp_path: Path) -> None:
    image = oci.write_wasm_image(MODULE, "/app.wasm", "example/app:1", tmp_path / "a.tar")
    files = members(image.archive)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    entry = index["manifests"][0]
    assert entry["platform"] == {"architecture": "wasm", "os": "wasi"}
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "example/app:1"
    manifest_bytes = files[f"blobs/sha256/{entry['digest'].removeprefix('sha256:')}"]
    assert hashlib.sha256(manifest_bytes).hexdigest() == entry["digest"].removeprefix("sha256:")
    manifest = json.loads(manifest_bytes)
    config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'][7:]}"])
    assert (config["os"], config["architecture"]) == ("wasi", "wasm")
    assert config["config"]["Entrypoint"] == ["/app.wasm"]
    layer = files[f"blobs/sha256/{manifest['layers'][0]['digest'][7:]}"]
    assert len(layer) == image.layer_bytes == manifest["layers"][0]["size"]
    layer_tar = gzip.decompress(layer)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
        assert tar.getnames() == ["app.wasm"]
        assert tar.extractfile("app.wasm").read() == MODULE  # type: ignore[union-attr]


def test_same_module_gives_the_same_bytes(tmp_path: Path) -> None:
    first = oci.write_wasm_image(MODULE, "/app.wasm", "example/app:1", tmp_path / "a.tar")
    second = oci.write_wasm_image(MODULE, "/app.wasm", "example/app:1", tmp_path / "b.tar")
    assert first.archive.read_bytes() == second.archive.read_bytes()
    other = oci.write_wasm_image(MODULE + b"\0", "/app.wasm", "example/app:1", tmp_path / "c.tar")
    assert other.manifest_digest != first.manifest_digest


def test_record_labels_each_size(tmp_path: Path) -> None:
    image = oci.write_wasm_image(MODULE, "/app.wasm", "example/app:1", tmp_path / "a.tar")
    record = oci.image_record(image, "wasm", "example/app:1", "cmd")
    assert record.content_size_uncompressed_bytes == len(MODULE)
    assert record.archive_size_bytes == (tmp_path / "a.tar").stat().st_size
    assert record.platform == "wasi/wasm"
    assert record.file_count == 1 and record.files == record.entrypoint == ["/app.wasm"]
    assert set(record.size_methods) == {
        "content_size_uncompressed_bytes",
        "layers_size_compressed_bytes",
        "archive_size_bytes",
    }

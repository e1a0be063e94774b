"""Image sizes from `docker save` archives of both layouts give the same figures."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from pathlib import Path

import pytest

from labreport.build import sizes
from labreport.errors import LabreportError

BINARY = bytes(range(256)) * 4_000  # 1,024,000 bytes that compress somewhat


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            archive.addfile(info, io.BytesIO(data))
        directory = tarfile.TarInfo("app")
        directory.type, directory.mtime = tarfile.DIRTYPE, 0
        archive.addfile(directory)
    return buffer.getvalue()


LAYER = tar_bytes({"app/moscow-time": BINARY, "etc/note": b"hello\n"})


def legacy_archive(path: Path) -> Path:
    """Docker before 25: <id>/layer.tar, uncompressed, named by manifest.json."""
    manifest = [{"Config": "abc.json", "RepoTags": None, "Layers": ["1111/layer.tar"]}]
    path.write_bytes(
        tar_bytes(
            {
                "abc.json": b"{}",
                "1111/layer.tar": LAYER,
                "manifest.json": json.dumps(manifest).encode(),
            }
        )
    )
    return path


def oci_archive(path: Path, compress: bool) -> Path:
    """Docker 25+: an OCI layout; manifest.json names blobs/sha256/<digest>."""
    blob = gzip.compress(LAYER, mtime=0) if compress else LAYER
    name = f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"
    manifest = [{"Config": "blobs/sha256/cfg", "RepoTags": None, "Layers": [name]}]
    path.write_bytes(
        tar_bytes(
            {
                "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
                "index.json": b"{}",
                "blobs/sha256/cfg": b"{}",
                name: blob,
                "manifest.json": json.dumps(manifest).encode(),
            }
        )
    )
    return path


def expected_gzip() -> int:
    compressor = zlib.compressobj(sizes.GZIP_LEVEL, zlib.DEFLATED, 31)
    return len(compressor.compress(LAYER) + compressor.flush())


@pytest.mark.parametrize("layout", ["legacy", "oci", "oci-gzip"])
def test_both_layouts_give_the_same_sizes(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "saved.tar"
    if layout == "legacy":
        legacy_archive(path)
    else:
        oci_archive(path, compress=layout == "oci-gzip")
    found = sizes.saved_layers(path)
    assert found.count == 1
    assert found.files_bytes == len(BINARY) + len(b"hello\n")  # files only, no tar headers
    assert found.gzip_bytes == expected_gzip()  # of the uncompressed tar, whatever was stored
    assert found.file_count == 2 and found.files == ("/app/moscow-time", "/etc/note")  # no dirs


def test_archive_without_manifest_or_with_a_missing_layer_is_a_user_error(tmp_path: Path) -> None:
    bare = tmp_path / "bare.tar"
    bare.write_bytes(tar_bytes({"index.json": b"{}"}))
    with pytest.raises(LabreportError, match=r"no manifest\.json naming exactly one image"):
        sizes.saved_layers(bare)
    broken = tmp_path / "broken.tar"
    manifest = [{"Config": "c", "Layers": ["blobs/sha256/nothere"]}]
    broken.write_bytes(tar_bytes({"manifest.json": json.dumps(manifest).encode()}))
    with pytest.raises(LabreportError, match="names layer blobs/sha256/nothere"):
        sizes.saved_layers(broken)
    not_tar = tmp_path / "junk.tar"
    not_tar.write_bytes(b"junk" * 100)
    with pytest.raises(LabreportError, match="not a readable docker save archive"):
        sizes.saved_layers(not_tar)

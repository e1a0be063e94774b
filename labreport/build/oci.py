"""The WASM container image, written directly as an OCI image layout and saved as an archive.

One layer holds the module at its path; the config says os `wasi`, architecture `wasm`, and
names the module as the entrypoint. It is what `buildah bud --platform wasi/wasm -f
app/Dockerfile.wasm` makes, without a builder's storage to clean up, and byte-for-byte the same
for the same module (fixed mtimes, owners and gzip header), so its digest identifies it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labreport.build.sizes import GZIP_LEVEL
from labreport.host import fsutil
from labreport.record.models import ImageRecord

PLATFORM = "wasi/wasm"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_SIZE_METHODS = {
    "content_size_uncompressed_bytes": "sum of the file sizes in the image's layer "
    "(what the engine's image Size counts for the Docker image)",
    "layers_size_compressed_bytes": f"the layer blob as stored: tar gzip-compressed at level "
    f"{GZIP_LEVEL}",
    "archive_size_bytes": "bytes of the OCI archive (tar of the OCI image layout) that ctr imports",
}


@dataclass(frozen=True)
class OciImage:
    archive: Path
    manifest_digest: str
    config_digest: str
    content_bytes: int
    layer_bytes: int
    module_path: str  # the layer's one file, and the entrypoint


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _tar(files: list[tuple[str, bytes]]) -> bytes:
    """An uncompressed tar with fixed metadata, so that equal input gives equal bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def qualified(reference: str) -> str:
    """The fully qualified name Docker looks images up by (docker.io/library/... as needed).

    The image is written under this name so that ctr and Docker's containerd image store find
    it alike: Docker keeps a loaded image under the name the layout gives, but looks up
    `labreport/x` as `docker.io/labreport/x`.
    """
    first, slash, rest = reference.partition("/")
    if not slash:
        return f"docker.io/library/{reference}"
    if "." in first or ":" in first or first == "localhost":
        return reference
    return f"docker.io/{first}/{rest}"


def write_wasm_image(module: bytes, module_path: str, reference: str, archive: Path) -> OciImage:
    """Write the OCI archive for a WASI module; returns its digests and sizes."""
    layer_tar = _tar([(module_path.lstrip("/"), module)])
    layer_digest, layer = _blob(gzip.compress(layer_tar, GZIP_LEVEL, mtime=0))
    config_digest, config = _blob(
        _json_bytes(
            {
                "architecture": "wasm",
                "os": "wasi",
                "config": {"Entrypoint": [module_path]},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()],
                },
                "history": [{"created_by": f"labreport: COPY module {module_path}"}],
            }
        )
    )
    manifest_digest, manifest = _blob(
        _json_bytes(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": [
                    {"mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": len(layer)}
                ],
            }
        )
    )
    index = _json_bytes(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": "wasm", "os": "wasi"},
                    "annotations": {"org.opencontainers.image.ref.name": reference},
                }
            ],
        }
    )
    files = (
        [
            ("oci-layout", _json_bytes({"imageLayoutVersion": "1.0.0"})),
            ("index.json", index),
        ]
        + [
            (f"blobs/sha256/{digest.removeprefix('sha256:')}", data)
            for digest, data in ((config_digest, config), (layer_digest, layer))
        ]
        + [(f"blobs/sha256/{manifest_digest.removeprefix('sha256:')}", manifest)]
    )
    fsutil.atomic_write_bytes(archive, _tar(files))
    return OciImage(archive, manifest_digest, config_digest, len(module), len(layer), module_path)


def image_record(image: OciImage, name: str, reference: str, build_command: str) -> ImageRecord:
    """The record of a WASM image write_wasm_image wrote: one layer holding the module alone."""
    return ImageRecord(
        name=name,
        reference=reference,
        image_id=image.manifest_digest,
        platform=PLATFORM,
        layer_count=1,
        content_size_uncompressed_bytes=image.content_bytes,
        layers_size_compressed_bytes=image.layer_bytes,
        archive_size_bytes=image.archive.stat().st_size,
        size_methods=OCI_SIZE_METHODS,
        build_command=build_command,
        entrypoint=[image.module_path],
        file_count=1,
        files=["/" + image.module_path.lstrip("/")],
    )

"""Image sizes, each named for what it is: content (uncompressed), layers (compressed), archive."""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path
from typing import IO

import docker

from labreport.models import ImageRecord

GZIP_LEVEL = 6
SIZE_METHODS = {
    "content_size_uncompressed_bytes": "the engine's image Size (sum of uncompressed layer "
    "content), as `docker image inspect --format {{.Size}}` shows",
    "layers_size_compressed_bytes": f"each layer tar gzip-compressed at level {GZIP_LEVEL}, summed "
    "(what a registry push would store)",
    "archive_size_bytes": "bytes of `docker save` output (uncompressed tar of layers + config)",
}


def gzip_size(stream: IO[bytes]) -> int:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    total = 0
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        total += len(compressor.compress(chunk))
    return total + len(compressor.flush())


def layer_sizes_compressed(archive_path: Path) -> tuple[int, int]:
    """(layer count, summed gzip size) of the layer tars inside a `docker save` archive."""
    count = total = 0
    with tarfile.open(archive_path) as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.endswith("layer.tar"):
                handle = archive.extractfile(member)
                assert handle is not None
                total += gzip_size(handle)
                count += 1
    return count, total


def docker_image_record(
    client: docker.DockerClient,
    name: str,
    reference: str,
    image_id: str,
    build_command: str,
    archive: Path,
) -> ImageRecord:
    """Sizes of a built image; its `docker save` archive is left at archive for later use."""
    image = client.images.get(image_id)
    with archive.open("wb") as saved:
        for chunk in image.save(named=False):
            saved.write(chunk)
    archive_size = archive.stat().st_size
    layer_count, compressed = layer_sizes_compressed(archive)
    return ImageRecord(
        name=name,
        reference=reference,
        image_id=image_id,
        platform=f"{image.attrs.get('Os', '?')}/{image.attrs.get('Architecture', '?')}",
        layer_count=layer_count,
        content_size_uncompressed_bytes=int(image.attrs["Size"]),
        layers_size_compressed_bytes=compressed,
        archive_size_bytes=archive_size,
        size_methods=SIZE_METHODS,
        build_command=build_command,
    )

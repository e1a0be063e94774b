"""The traditional container on the real engine: multi-stage scratch build, no network."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from labreport import config
from labreport.build import host_build
from labreport.build import image as image_build
from labreport.host import engine, fsutil
from labreport.host.endpoints import EngineEndpoint
from labreport.record.checks import check_output

pytestmark = pytest.mark.docker


def test_scratch_image_builds_offline_runs_and_matches_host_build(
    lab: config.LabConfig, tmp_path: Path, needs: Callable[[str], None]
) -> None:
    needs("docker-engine")
    needs("go")
    client = engine.connect(url=EngineEndpoint.from_environment().url)
    run_label = {engine.LABEL_RUN: f"test-{uuid.uuid4().hex[:8]}"}
    tag = f"{lab.image.repository}:test-{uuid.uuid4().hex[:8]}"
    try:
        image_id, command = image_build.build_image(client, lab, tag, run_label, ["docker"])
        image = client.images.get(image_id)
        assert image.attrs["Config"]["Entrypoint"] == [lab.image.binary_path]
        # FROM scratch: one layer, holding nothing but the binary.
        assert len(image.attrs["RootFS"]["Layers"]) == 1
        assert "--build-arg GO_BUILDER=labreport/go-builder:go" in command

        inner = image_build.file_from_image(client, image_id, lab.image.binary_path, run_label)
        host = host_build.host_build(lab, lab.image.build, tmp_path)
        assert fsutil.sha256_bytes(inner) == host.sha256
        assert int(image.attrs["Size"]) >= len(inner)

        output = client.containers.run(
            image_id, environment=lab.once.env, remove=True, labels=run_label
        )
        verdict = check_output(output.decode(), lab.check, time.time())
        assert verdict.ok, verdict.reason
    finally:
        client.images.remove(tag, force=True)
        engine.remove_build_leftovers(client)  # as every run of labreport's ends
        leftovers = client.api.containers(
            all=True, filters={"label": engine.LABEL_RUN + "=" + run_label[engine.LABEL_RUN]}
        )
        client.close()
    assert leftovers == []

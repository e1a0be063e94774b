"""Both kinds of engine for real: the host's Docker 20.10 (graph driver) and labreport's private
Docker 26 (containerd image store), with Docker's own WASM path measured on the latter; nothing
left on either, and the host's engine and docker0 untouched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from labreport import config
from labreport.build import host_build
from labreport.build import image as image_build
from labreport.errors import LabreportError
from labreport.host import engine, engine_layout, fsutil, private_engine
from labreport.host.containerd import Ctr
from labreport.host.endpoints import Endpoints, EngineEndpoint
from labreport.inventory import leftovers
from labreport.record.files import load_measurement

from ..conftest import ROOT, SMALL_LOAD, lab_copy
from .common import (
    assert_hey_served,
    assert_one_line_error,
    assert_shim_cache_used,
    engine_holds,
    labreport,
    measure_interrupted,
    shim_records,
    wait_until_started,
)

pytestmark = pytest.mark.docker


def left_on_engine(endpoints: Endpoints) -> dict[str, set[str]]:
    """What a run may leave on an engine: labelled containers, its images, and images or
    content in labreport's containerd namespace."""
    ctr = Ctr.find(endpoints.containerd)
    return {
        **engine_holds(url=endpoints.engine.url),
        "ctr images": set(ctr.image_names()),
        "ctr content": set(ctr.content()),
    }


def private_engine_traces() -> dict[str, object]:
    paths = engine_layout.layout()
    return {
        "processes": private_engine.processes_of(paths),
        "mounts": fsutil.mounts_under(paths.root),
        "bridge": private_engine.bridge_exists(),
        "socket": paths.socket.exists(),
    }


NO_TRACES = {"processes": [], "mounts": [], "bridge": False, "socket": False}


def private_engine_has_run_containers() -> bool:
    """Is a measure run on the private engine timing runs (a docker-cli run's container)?"""
    if not engine_layout.layout().socket.is_socket():
        return False
    try:
        client = engine.connect(timeout_s=5, url=engine_layout.layout().url)
    except LabreportError:
        return False
    try:
        # One list call, no inspect of a `--rm` container that may be gone meanwhile.
        labelled = client.api.containers(
            all=True, filters={"label": f"{engine.LABEL_MANAGED}=true"}
        )
    finally:
        client.close()
    return any("-cli-" in name for container in labelled for name in container.get("Names") or [])


def host_bridge_still_works(lab: config.LabConfig, tmp_path: Path) -> None:
    """docker0 is there and a container on the host engine's default bridge runs and answers."""
    shown = subprocess.run(["ip", "link", "show", "docker0"], capture_output=True, check=False)
    assert shown.returncode == 0
    binary = host_build.host_build(lab, "native", tmp_path / "bridge-check").path
    (binary.parent / "Dockerfile").write_text("FROM scratch\nCOPY moscow-time /moscow-time\n")
    client = engine.connect(url=EngineEndpoint.from_environment().url)
    try:
        image, _ = client.images.build(
            path=str(binary.parent), labels={engine.LABEL_MANAGED: "true"}, rm=True
        )
        try:
            output = client.containers.run(
                image.id, ["/moscow-time"], environment={"MODE": "once"}, network_mode="bridge",
                remove=True, labels={engine.LABEL_MANAGED: "true"},
            )  # fmt: skip
        finally:
            client.images.remove(image.id, force=True)
    finally:
        client.close()
    assert b"moscow_time" in output


def test_private_engine_measures_docker_and_its_wasm_path(
    tmp_path: Path, lab: config.LabConfig, needs: Callable[[str], None]
) -> None:
    needs("docker-engine")
    needs("docker-engine-private")
    needs("containerd-shim-wasmtime-v1")
    needs("containerd-shim-wasmtime-aot-v1")
    needs("go")
    output = tmp_path / "m.json"
    records_before = shim_records()
    runtimes = "docker-cli,docker-api,docker-wasm,docker-wasm-aot,ctr-runc"
    small = lab_copy(tmp_path / "lab", *SMALL_LOAD)
    process = labreport(
        "measure", "--config", str(small), "--engine", "private", "--runtime", runtimes,
        "--runs", "2", "--warmup", "1", "-o", str(output),
    )  # fmt: skip
    _, stderr = process.communicate(timeout=1200)
    assert process.returncode == 0, stderr
    result = load_measurement(output)
    for runtime in runtimes.split(","):
        samples = [s for s in result.samples if s.runtime == runtime]
        assert len(samples) == 3, runtime
        assert all(s.ok for s in samples), [s.failure for s in samples]
    facts = result.environment.engine
    assert facts["source"] == "private"
    assert facts["image_store"] == "containerd image store"
    assert str(facts["engine_version"]).startswith("26.")
    # doctor's versions in the file are of the engine and containerd measured, not the host's.
    tools = result.environment.tool_versions
    assert tools["docker-engine"] == facts["engine_version"]
    assert tools["containerd"] == result.environment.containerd["version"]
    assert float(str(facts["private_start_seconds"])) > 0
    # docker, ctr and the shims on one containerd: the private engine's own.
    assert "private Docker engine" in result.environment.containerd["source"]
    # Sizes on the containerd image store are the same figures as on the graph driver.
    inner = next(a for a in result.artifacts if a.origin == "image")
    traditional = next(i for i in result.images if i.name == "traditional")
    assert traditional.content_size_uncompressed_bytes == inner.size_bytes
    assert traditional.layers_size_compressed_bytes < traditional.content_size_uncompressed_bytes
    # Docker's own WASM path: checked WAGI, a CLI-run memory peak by the same method as runc's.
    wagi = next(c for c in result.checks if c.name == "wagi" and c.runtime == "docker-wasm")
    assert wagi.ok, wagi.detail
    peaks = {m.runtime: m for m in result.memory if m.mode == "once"}
    for runtime in ("docker-api", "docker-wasm", "docker-wasm-aot"):
        assert peaks[runtime].peak_bytes, peaks[runtime].failure
    assert peaks["docker-api"].method == peaks["docker-wasm"].method
    # Both WASM containers serve (WAGI in the shim) through Docker, every response checked, on
    # the host's network: no interface of theirs ever lands in the host's namespace.
    serving = {s.runtime: s for s in result.serving}
    for runtime in ("docker-wasm", "docker-wasm-aot"):
        assert serving[runtime].model == "wagi" and not serving[runtime].failure
        assert "--network host" in serving[runtime].command
        assert all(lv.ok == lv.requests > 0 for lv in serving[runtime].levels)
        assert_hey_served(serving[runtime], config.load(small).server)
    assert serving["docker-api"].model == "server" and not serving["docker-api"].failure
    idle = {m.runtime: m.idle_median_bytes() for m in result.memory if m.mode == "server"}
    assert idle["docker-wasm-aot"] and idle["docker-api"]
    # Through Docker too the caching shim compiles at its first start and maps the stored code
    # after (its key is the module, which Docker's missing image field does not hide).
    module = next(a for a in result.artifacts if a.name == lab.wasm_image.build)
    assert_shim_cache_used(
        result.samples, "docker-wasm-aot", "docker-wasm", module.sha256, records_before
    )
    # Stopped, and nothing of it left on the host.
    assert private_engine_traces() == NO_TRACES
    # Nothing left inside the private engine either (started again to look).
    with private_engine.running() as started:
        assert left_on_engine(started.endpoints) == {
            "containers": set(), "images": set(), "ctr images": set(), "ctr content": set(),
        }  # fmt: skip
    assert private_engine_traces() == NO_TRACES
    # The host's engine: untouched, its bridge and containers still work.
    host_bridge_still_works(lab, tmp_path)


def test_a_private_engine_killed_with_everything_starts_cleanly_again(
    tmp_path: Path, needs: Callable[[str], None]
) -> None:
    """kill -9 of labreport, dockerd and containerd: the next start clears what they left."""
    needs("docker-engine-private")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time\nfrom labreport.host import private_engine\n"
         "with private_engine.running():\n    print('up', flush=True)\n    time.sleep(600)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
        paths = engine_layout.layout()
        assert private_engine.processes_of(paths)
        for pid in [holder.pid, *private_engine.processes_of(paths)]:
            os.kill(pid, signal.SIGKILL)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    time.sleep(0.5)
    assert paths.socket.exists() and private_engine.bridge_exists()  # what it left behind
    with private_engine.running() as started:
        assert "bridge labreport0" in started.cleared
        assert engine.connect(url=started.url).ping()
    assert private_engine_traces() == NO_TRACES


def test_the_build_cache_outlives_a_runs_cleanup_and_a_restart_of_the_private_engine(
    lab: config.LabConfig, needs: Callable[[str], None]
) -> None:
    """On the containerd image store, a run's cleanup and the next start's sweep keep the
    images of the build stage's steps (an image prune took them, and every build compiled
    again): a build after both is the one before, step by step. And `labreport clean --all`
    lets the cache go with the images of its steps (removing an image there leaves its
    untagged parents, so each is listed, and removed, next)."""
    needs("docker-engine-private")
    needs("go")
    cache = f"{image_build.STAGE_CACHE_REPOSITORY}:{lab.name}-0"

    def build(started: private_engine.Started) -> str:
        """One build as a run makes it and cleans up after it; the stage cache's image."""
        client = engine.connect(url=started.url)
        tag = f"{lab.image.repository}:run-cachetest"
        try:
            image_build.build_image(client, lab, tag, {engine.LABEL_RUN: "cachetest"}, [])
            leaf = str(client.images.get(cache).id)
        finally:
            client.images.remove(tag)
            engine.remove_build_leftovers(client)  # as every run ends
            client.close()
        assert engine_holds(url=started.url) == {"containers": set(), "images": set()}
        return leaf

    with private_engine.running() as started:
        build(started)  # the cache is there, whatever earlier tests left
        items = leftovers.engine_objects(started.endpoints.engine)
        next(item for item in items if item.what.startswith(cache)).remove()
        client = engine.connect(url=started.url)
        try:
            assert untagged_under_nothing_tagged(client) == set()
        finally:
            client.close()
    leaves = []
    for _ in range(2):  # the first compiles; the cache it leaves is kept for later builds
        with private_engine.running() as started:
            leaves.append(build(started))
    assert leaves[0] == leaves[1]


def untagged_under_nothing_tagged(client: docker.DockerClient) -> set[str]:
    """labreport's images that are neither tagged nor the parent of a tagged one (any depth)."""
    images = client.api.images(all=True)
    parent = {str(i["Id"]): str(i.get("ParentId") or "") for i in images}
    kept: set[str] = set()
    for image in images:
        if any(tag != "<none>:<none>" for tag in image.get("RepoTags") or []):
            current = str(image["Id"])
            while current and current not in kept:
                kept.add(current)
                current = parent.get(current, "")
    return {
        str(i["Id"])
        for i in images
        if str(i["Id"]) not in kept and (i.get("Labels") or {}).get(engine.LABEL_MANAGED)
    }


def test_a_second_run_is_refused_while_one_holds_the_private_engine(
    needs: Callable[[str], None],
) -> None:
    needs("docker-engine-private")
    with (
        private_engine.running(),
        pytest.raises(LabreportError, match="another labreport run"),
        private_engine._exclusive(engine_layout.layout()),
    ):
        pass
    assert private_engine_traces() == NO_TRACES


def test_host_engine_is_used_where_it_suffices(needs: Callable[[str], None]) -> None:
    needs("docker-engine")
    host = EngineEndpoint.from_environment()
    assert not private_engine.wanted("auto", needs_store=False, host=host)
    assert not private_engine.wanted("host", needs_store=True, host=host)
    assert private_engine.wanted("private", needs_store=False, host=host)
    client = engine.connect(url=host.url)
    try:
        host_has_store = engine.has_containerd_store(client.info())
    finally:
        client.close()
    installed = not engine_layout.installed()
    assert private_engine.wanted("auto", needs_store=True, host=host) == (
        installed and not host_has_store
    )


def test_sigterm_stops_the_private_engine_and_leaves_nothing(
    tmp_path: Path, needs: Callable[[str], None]
) -> None:
    """SIGTERM mid-run, like a CI cancel: the run's containers, images and the engine go."""
    needs("docker-engine-private")
    needs("go")

    measure_interrupted(
        tmp_path, "docker-cli", private_engine_has_run_containers, signal.SIGTERM,
        ("--engine", "private"),
    )  # fmt: skip
    assert private_engine_traces() == NO_TRACES
    with private_engine.running() as started:
        assert left_on_engine(started.endpoints) == {
            "containers": set(), "images": set(), "ctr images": set(), "ctr content": set(),
        }  # fmt: skip


def test_the_private_engine_dying_mid_run_is_one_line_and_leaves_nothing(
    tmp_path: Path, needs: Callable[[str], None]
) -> None:
    """kill -9 of dockerd while runs go on: the run stops with one line, keeps its partial
    file, clears what the engine left; the next start finds nothing of it."""
    needs("docker-engine-private")
    needs("go")
    output = tmp_path / "out.json"
    process = labreport(
        "measure", "--engine", "private", "--runtime", "docker-cli", "--runs", "200",
        "--warmup", "0", "--no-memory", "--no-serving", "-o", str(output),
    )  # fmt: skip
    wait_until_started(process, private_engine_has_run_containers)
    os.kill(int(engine_layout.layout().pidfile.read_text()), signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr
    assert_one_line_error(stderr)
    assert "the private Docker engine exited mid-run" in stderr
    assert not output.exists()
    assert load_measurement(tmp_path / "out.partial.json").partial
    assert private_engine_traces() == NO_TRACES
    with private_engine.running() as started:
        assert left_on_engine(started.endpoints) == {
            "containers": set(), "images": set(), "ctr images": set(), "ctr content": set(),
        }  # fmt: skip

"""The leak audit finds what labreport would leave behind, and `labreport clean` removes it.

A leak is made here on purpose, of the kinds that need no engine: a process whose command line
names a run of labreport's (as a container's shim or client does), and the cgroup a ctr run
makes for labreport's namespace. The audit (`labreport clean --check`, the test command's last
step) must fail and name them; `labreport clean` must remove them; then the audit passes.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from labreport.host import cgroup
from labreport.host.endpoints import CONTAINERD_NAMESPACE, Endpoints
from labreport.inventory import leftovers

from .test_cli import run

# Every probe, on the engine and containerd this host's environment names.
EVERY_PROBE = leftovers.every_probe(Endpoints.from_environment())
LEAK_NAME = "labreport-0123456789-leaktest"


def test_the_audit_fails_on_a_leak_and_clean_removes_it(tmp_path: Path) -> None:
    before = {item.line() for item in leftovers.leaks(EVERY_PROBE)}
    sleeper = subprocess.Popen(["bash", "-c", f"exec -a {LEAK_NAME} sleep 300"])
    made_cgroup = cgroup.CGROUP_MEMORY_ROOT / CONTAINERD_NAMESPACE / LEAK_NAME
    can_make_cgroups = os.geteuid() == 0 and cgroup.CGROUP_MEMORY_ROOT.is_dir()
    try:
        if can_make_cgroups:
            made_cgroup.mkdir(parents=True)
        deadline = time.monotonic() + 10  # the sleeper may still be between bash and sleep
        while True:
            lines = {item.line() for item in leftovers.leaks(EVERY_PROBE)} - before
            seen = any(LEAK_NAME in line and line.startswith("process:") for line in lines)
            if seen or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert seen, lines
        if can_make_cgroups:
            assert any(line.startswith(f"cgroup: {CONTAINERD_NAMESPACE} ") for line in lines)

        audit = run("clean", "--check")
        assert audit.returncode == 1, audit.stdout + audit.stderr
        assert f"LEFT BEHIND: process: pid {sleeper.pid}:" in audit.stdout
        assert audit.stderr.splitlines()[-2].startswith("error: ")
        assert "labreport clean" in audit.stderr.splitlines()[-1]

        cleaned = run("clean")
        assert cleaned.returncode == 0, cleaned.stderr
        assert f"removed process: pid {sleeper.pid}:" in cleaned.stdout
        assert sleeper.wait(timeout=10) == -9  # killed by clean
        assert not made_cgroup.exists() and not made_cgroup.parent.exists()
        assert not {item.line() for item in leftovers.leaks(EVERY_PROBE)} - before
    finally:
        sleeper.kill()
        sleeper.wait()
        if made_cgroup.exists():
            made_cgroup.rmdir()
        cgroup.remove_cgroups(CONTAINERD_NAMESPACE)


def test_what_is_kept_is_listed_and_not_a_leak() -> None:
    """The state directory and the engine's caches are kept on purpose: listed, exit 0 when
    nothing else is there (what else a host holds is not this test's to judge: see above)."""
    kept = [item for item in leftovers.find((leftovers.state_directory,)) if item.kept]
    assert all(item.kind == "state" for item in kept)
    done = run("clean", "--check")
    for item in kept:
        assert f"kept: {item.line().split(' (')[0]}" in done.stdout

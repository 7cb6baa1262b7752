"""The base of every settings group, in a module of its own so rule groups (core/rule_settings.py) share it."""

from __future__ import annotations

from typing import Any, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class Group(BaseModel):
    """Base of every settings group: unknown keys are errors, and lists accept `a,b,c` strings."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _comma_lists(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, str) and field is not None and get_origin(field.annotation) is list:
            text = value.strip()
            if text.startswith("["):
                return yaml.safe_load(text)
            return [v.strip() for v in text.split(",") if v.strip()]
        return value

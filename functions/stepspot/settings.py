"""Typed settings of the Lambdas, read from environment variables once per cold start.

Each handler declares a subclass of ``LambdaSettings`` whose field aliases are the variable names (see
docs/contracts.md) and loads it with ``load_settings`` in its cold-start ``runtime()`` (the one handler
shape: docs/contracts.md "Handlers"). A missing or malformed variable raises ``ConfigurationError`` naming every
problem at once, so a misconfigured deployment fails loudly on its first invocation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from stepspot.errors import ConfigurationError

SettingsT = TypeVar("SettingsT", bound="LambdaSettings")


class LambdaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


def load_settings(model: type[SettingsT], environ: Mapping[str, str] | None = None) -> SettingsT:
    env = os.environ if environ is None else environ
    try:
        return model.model_validate({key: value for key, value in env.items() if value != ""})
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            if not error["loc"]:  # a rule across fields (a model validator): its message names them
                problems.append(str(error["msg"]).removeprefix("Value error, "))
            elif error["type"] == "missing":
                problems.append(f"{error['loc'][0]} is not set")
            else:
                problems.append(f"{error['loc'][0]} is invalid ({error['msg']})")
        raise ConfigurationError(
            f"{model.__name__}: " + "; ".join(problems) + ": set it in the function's environment "
            "(Terraform module 'functions' does this on deploy)",
            variables=[str(e["loc"][0]) for e in exc.errors() if e["loc"]],
        ) from None

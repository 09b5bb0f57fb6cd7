"""What the services' own settings (`processor.config`, `gateway.config`) share: the error that
names each bad flag or variable, the variable a pydantic-settings field is read from, and the
lines a `ValidationError` becomes. Each service keeps its model, flags and defaults."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from pydantic import AliasChoices, ValidationError
from pydantic_settings import BaseSettings


class ConfigError(ValueError):
    """Configuration that cannot be used; `lines` name each bad flag or variable."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = tuple(lines)


def env_name(settings: type[BaseSettings], prefix: str, field_name: str) -> str:
    """The variable a setting is read from: its alias if it has one, else `prefix` + its name."""
    alias = settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[-1])
    return prefix + field_name.upper()


def describe_errors(error: ValidationError, settings: type[BaseSettings], variable: Callable[[str], str],
                    flag_of: Callable[[str], str | None], given: Collection[str],
                    secret: Collection[str] = ()) -> list[str]:
    """One line per bad value, named as the operator gave it: its flag if given by flag
    (`given`), else its variable; a wrong string is quoted back unless the field is `secret`."""
    lines = []
    for detail in error.errors(include_url=False):
        field_name = str(detail["loc"][0]) if detail["loc"] else ""
        if field_name not in settings.model_fields:  # an alias: map it back
            field_name = next((n for n in settings.model_fields if variable(n) == field_name), field_name)
        flag = flag_of(field_name)
        if field_name not in settings.model_fields:
            where = field_name
        else:
            where = flag if flag is not None and field_name in given else variable(field_name)
        message = detail["msg"]
        value = detail.get("input")
        if detail["type"] == "missing":
            message = f"required (or {flag})" if flag else "required"
        elif isinstance(value, str) and field_name not in secret:
            message += f" (got {value[:60]!r})"
        lines.append(f"{where}: {message}")
    return lines

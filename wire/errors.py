"""Typed errors of the wire layer; callers catch these, never fastavro's own exceptions."""

from __future__ import annotations

from typing import Any


class WireError(Exception):
    """Base class of every error raised by the wire package."""


class SchemaError(WireError):
    """The .avsc files are inconsistent (duplicate or unknown names, file named unlike its type)."""


class DecodeError(WireError):
    """A consumed record could not be decoded; names where it came from so it can be dead-lettered."""

    def __init__(self, *, schema_name: str, topic: str, partition: int, offset: int, reason: str) -> None:
        self.schema_name = schema_name
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.reason = reason
        super().__init__(f"cannot decode {schema_name} from {topic}[{partition}]@{offset}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only __init__: keep the error picklable (multiprocessing, xdist)
        return _rebuild, (type(self), self.__dict__)


class RecordError(WireError, ValueError):
    """A record decodes but is not a valid record of its kind (e.g. a command whose payload does not
    match its command_type); raised by `wire.records` while mapping it to domain values."""


class EncodeError(WireError):
    """A record does not match its schema; `field` is a path such as "tickets[2].ticket.quantity"."""

    def __init__(self, *, schema_name: str, reason: str, field: str | None = None) -> None:
        self.schema_name = schema_name
        self.field = field
        self.reason = reason
        where = f" at {field}" if field else ""
        super().__init__(f"cannot encode {schema_name}{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.__dict__)


def _rebuild(cls: type[WireError], state: dict[str, Any]) -> WireError:
    return cls(**state)

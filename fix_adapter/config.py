"""The adapter's configuration: Kafka, topics, and one FIX initiator session per counterparty.

A counterparty is given as one `--counterparty` value (repeatable; or `FIX_COUNTERPARTIES`,
several separated by `;`):

    name=EXEC,host=127.0.0.1,port=9880,sender=ADAPTER,target=EXEC[,heartbeat=30][,tickets=SECURITY_ORDER+FX_SPOT_ORDER][,reset_on_logon=n]

`tickets` says which ticket types go to it (default both order types); the first counterparty
that takes a ticket's type gets it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from execution_domain.tickets import TicketType
from fix_adapter.session import SessionConfig
from kafka_client.settings import KafkaSettings

ORDER_TICKET_TYPES = (TicketType.SECURITY_ORDER.value, TicketType.FX_SPOT_ORDER.value)


@dataclass(frozen=True, slots=True)
class Counterparty:
    name: str
    host: str
    port: int
    session: SessionConfig
    ticket_types: tuple[str, ...] = ORDER_TICKET_TYPES


@dataclass(frozen=True, slots=True)
class AdapterTopics:
    trade_tickets: str = "trade-tickets"
    order_events: str = "order-events"
    dead_letters: str = "dead-letters"
    state: str = ""  # default: "<adapter_id>.state"


@dataclass(frozen=True, slots=True)
class AdapterConfig:
    kafka: KafkaSettings
    counterparties: tuple[Counterparty, ...]
    adapter_id: str = "fix-adapter"  # consumer group, transactional id, state topic prefix
    topics: AdapterTopics = AdapterTopics()
    status_after_s: float = 60.0  # OrderStatusRequest for an open order with no report for this long
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    http_host: str = "127.0.0.1"
    http_port: int = 9465
    seq_reservation: int = 100  # outgoing MsgSeqNums committed ahead (see docs/fix.md)

    @property
    def state_topic(self) -> str:
        return self.topics.state or f"{self.adapter_id}.state"

    def route(self, ticket_type: str) -> str | None:
        return next((c.name for c in self.counterparties if ticket_type in c.ticket_types), None)


class ConfigError(ValueError):
    pass


_KNOWN = {"name", "host", "port", "sender", "target", "heartbeat", "tickets", "reset_on_logon"}


def parse_counterparty(text: str) -> Counterparty:
    items: dict[str, str] = {}
    for part in text.split(","):
        key, separator, value = part.partition("=")
        key = key.strip()
        if not separator or not key or not value.strip():
            raise ConfigError(f"counterparty: expected key=value, got {part!r} in {text!r}")
        if key not in _KNOWN:
            raise ConfigError(f"counterparty: unknown key {key!r} (known: {', '.join(sorted(_KNOWN))})")
        items[key] = value.strip()
    missing = [key for key in ("name", "host", "port", "sender", "target") if key not in items]
    if missing:
        raise ConfigError(f"counterparty {text!r} lacks {', '.join(missing)}")
    if not items["port"].isdigit():
        raise ConfigError(f"counterparty port must be a number, got {items['port']!r}")
    heartbeat = items.get("heartbeat", "30")
    if not heartbeat.isdigit() or int(heartbeat) < 1:
        raise ConfigError(f"counterparty heartbeat must be whole seconds >= 1, got {heartbeat!r}")
    tickets = tuple(items.get("tickets", "+".join(ORDER_TICKET_TYPES)).split("+"))
    unknown = [t for t in tickets if t not in {kind.value for kind in TicketType}]
    if unknown:
        raise ConfigError(f"counterparty tickets: unknown ticket type(s) {', '.join(unknown)}")
    session = SessionConfig(sender_comp_id=items["sender"], target_comp_id=items["target"], heartbeat_s=int(heartbeat),
                            reset_on_logon=items.get("reset_on_logon", "n").lower() in ("y", "yes", "true", "1"))
    return Counterparty(items["name"], items["host"], int(items["port"]), session, tickets)


def parse_counterparties(values: Sequence[str], environ: Mapping[str, str]) -> tuple[Counterparty, ...]:
    texts = list(values) or [t for t in environ.get("FIX_COUNTERPARTIES", "").split(";") if t.strip()]
    if not texts:
        raise ConfigError("at least one --counterparty (or FIX_COUNTERPARTIES) is required")
    counterparties = tuple(parse_counterparty(text) for text in texts)
    names = [c.name for c in counterparties]
    if len(set(names)) != len(names):
        raise ConfigError(f"counterparty names must be unique: {names}")
    return counterparties

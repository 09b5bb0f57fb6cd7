"""The FIX adapter process: `trade-tickets` in, FIX sessions out and back, `order-events` out.

One thread runs one loop over the Kafka consumer, the FIX sockets (non-blocking, `selectors`)
and the timers. Everything the adapter learns is committed in one Kafka transaction: the order
events, its order records and session sequence numbers (a compacted state topic) and the offsets
of the instructions it consumed. Messages are written to a FIX socket only after the commit that
records their MsgSeqNum (and, for an order, that it is sent): so a crash can neither send an
order twice nor lose or duplicate an order event for a `read_committed` reader (docs/fix.md).
"""

from __future__ import annotations

import errno
import json
import logging
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from execution_domain import OrderEvent
from fix_adapter.codec import MSG_TYPE_NAMES, FixStreamReader, FrameError, MsgType
from fix_adapter.config import AdapterConfig, Counterparty
from fix_adapter.mapping import order_cancel_request, order_status_request, with_transact_time
from fix_adapter.metrics import AdapterMetrics
from fix_adapter.orders import OrderBook, OrderRecord, Outgoing
from fix_adapter.session import STATUS_GAUGE, FixSession, SessionObserver, SessionStatus
from kafka_client.topics import TopicSpec, ensure_topics, existing_partition_counts
from observability import tracing
from wire import records as translate
from wire import serde
from wire.errors import DecodeError

log = logging.getLogger(__name__)

_INSTRUCTION = serde.codec("TicketInstruction")
_ORDER_EVENT = serde.codec("OrderEvent")
_DEAD_LETTER = serde.codec("DeadLetter")
_STATE_TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}


class AdapterFatalError(RuntimeError):
    """The adapter cannot go on safely (fenced by a newer instance, transaction failed): it exits."""


@dataclass
class _Connection:
    """One counterparty's TCP connection and FIX session."""

    counterparty: Counterparty
    session: FixSession
    reserved_out_seq: int  # highest outgoing MsgSeqNum committed as possibly used
    sock: socket.socket | None = None
    connecting: bool = False
    reader: FixStreamReader = field(default_factory=FixStreamReader)
    write_buffer: bytearray = field(default_factory=bytearray)
    next_attempt: float = 0.0
    backoff_s: float = 0.0
    status_requests: int = 0
    last_silence_check: float = 0.0

    @property
    def name(self) -> str:
        return self.counterparty.name


class FixAdapter:
    def __init__(self, config: AdapterConfig, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config = config
        self.metrics = AdapterMetrics()
        self.book = OrderBook()
        self._clock = clock
        self._selector = selectors.DefaultSelector()
        self._connections: dict[str, _Connection] = {}
        self._pending_events: list[OrderEvent] = []
        self._pending_dead_letters: list[tuple[Message, str, str]] = []
        self._positions: dict[tuple[str, int], int] = {}  # consumed, not yet committed: next offset
        self._session_dirty = False
        self._counted: dict[str, int] = {}  # book counters already added to the metrics
        self._stopping = False
        self._last_commit = 0.0
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self.ready = False
        self.last_loop = time.monotonic()
        self.instructions_handled = 0

    # -- start-up ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the state topic, fence any older instance, restore state, subscribe."""
        base: dict[str, Any] = dict(self.config.kafka.base_config())
        topics = self.config.topics
        admin = AdminClient(base)
        ensure_topics(admin, [TopicSpec(self.config.state_topic, 1, _STATE_TOPIC_CONFIG)])
        self._wait_for_topics(admin, [topics.trade_tickets, topics.order_events, topics.dead_letters])
        self._producer = Producer({
            **base, "transactional.id": self.config.adapter_id, "partitioner": "murmur2_random",
            "enable.idempotence": True, "linger.ms": 1, "transaction.timeout.ms": 30000,
        })
        # Fences an older instance with the same id and aborts its open transaction, so what the
        # restore reads next is decided.
        self._producer.init_transactions(60)
        sessions = self._restore()
        for counterparty in self.config.counterparties:
            stored = sessions.get(counterparty.name, {})
            reserved = int(stored.get("out_seq_reserved", 0))
            session = FixSession(counterparty.session, next_out_seq=reserved + 1,
                                 next_in_seq=int(stored.get("next_in_seq", 1)), observer=self._observer(counterparty.name))
            self._connections[counterparty.name] = _Connection(counterparty, session, reserved)
            self.metrics.session_state.labels(counterparty.name).set(0)
            self.metrics.orders_without_report.labels(counterparty.name).set(self.book.without_report(counterparty.name))
        self._consumer = Consumer({
            **base, "group.id": self.config.adapter_id, "isolation.level": "read_committed",
            "auto.offset.reset": "earliest", "enable.auto.commit": False, "partition.assignment.strategy": "range",
            # Static membership: a restarted adapter takes its place in the group at once instead of
            # waiting out the dead one's session timeout (it is one instance with a stable identity).
            "group.instance.id": self.config.adapter_id, "session.timeout.ms": 15000,
        })
        self._consumer.subscribe([topics.trade_tickets], on_revoke=self._on_revoke)
        self.ready = True
        log.info("FIX adapter %s started: %d order(s) restored, sessions %s", self.config.adapter_id,
                 len(self.book.orders), {name: (c.session.next_out_seq, c.session.next_in_seq)
                                         for name, c in self._connections.items()})

    def _observer(self, name: str) -> SessionObserver:
        metrics = self.metrics

        def on_message(direction: str, msg_type: str) -> None:
            metrics.messages.labels(name, direction, MSG_TYPE_NAMES.get(msg_type, msg_type)).inc()

        def on_resend_request(direction: str) -> None:
            metrics.resend_requests.labels(name, direction).inc()

        def on_garbled() -> None:
            metrics.garbled.labels(name).inc()

        return SessionObserver(on_message, on_resend_request, on_garbled)

    def _wait_for_topics(self, admin: AdminClient, names: list[str], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            missing = [name for name in names if name not in existing_partition_counts(admin, names)]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AdapterFatalError(f"topics do not exist: {', '.join(missing)} (the processor creates them)")
            log.info("waiting for topics %s", ", ".join(missing))
            time.sleep(1)

    def _restore(self) -> dict[str, dict[str, Any]]:
        """Read the compacted state topic to its end (read_committed): order records and session numbers."""
        consumer = Consumer({
            **dict(self.config.kafka.base_config()), "group.id": f"{self.config.adapter_id}.restore",
            "isolation.level": "read_committed", "enable.auto.commit": False, "enable.partition.eof": True,
        })
        sessions: dict[str, dict[str, Any]] = {}
        try:
            partition = TopicPartition(self.config.state_topic, 0, OFFSET_BEGINNING)
            _, high = consumer.get_watermark_offsets(partition, timeout=30, cached=False)
            if high == 0:
                return sessions
            consumer.assign([partition])
            while True:
                message = consumer.poll(1.0)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        break
                    raise KafkaException(error)
                key, value = (message.key() or b"").decode(), message.value()
                if value is None:
                    continue
                data = json.loads(value)
                if key.startswith("order/"):
                    self.book.load(OrderRecord.from_primitive(data))
                elif key.startswith("session/"):
                    sessions[key.removeprefix("session/")] = data
        finally:
            consumer.close()
        return sessions

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool]) -> None:
        if not self.ready:
            self.start()
        try:
            while not should_stop():
                self.step()
            self._shutdown()
        finally:
            self.close()

    def step(self, max_wait_s: float = 0.02) -> None:
        self.last_loop = now = time.monotonic()
        wall = self._clock()
        self._connect_due(now)
        took = self._consume_instructions(wall)
        self._poll_sockets(0 if took else max_wait_s)
        now, wall = time.monotonic(), self._clock()
        for connection in self._connections.values():
            self._drive(connection, now, wall)
        self._commit_and_flush(now)

    def _consume_instructions(self, wall: datetime) -> int:
        assert self._consumer is not None
        messages = self._consumer.consume(200, timeout=0)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer: %s", error)
                continue
            self._handle_instruction(message, wall)
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            assert topic is not None and partition is not None and offset is not None
            self._positions[(topic, partition)] = offset + 1
        return len(messages)

    def _handle_instruction(self, message: Message, wall: datetime) -> None:
        try:
            # A None value (tombstone) is refused by decode with a DecodeError like any bad value.
            record = _INSTRUCTION.decode(cast(bytes, message.value()), topic=message.topic() or "",
                                         partition=message.partition() or 0, offset=message.offset() or 0)
            ticket = translate.ticket_from_record(record["ticket"])
        except (DecodeError, ValueError, KeyError, TypeError) as error:
            log.error("instruction at %s[%d]@%d cannot be used: %s; dead-lettered", message.topic(),
                      message.partition(), message.offset(), error)
            self._pending_dead_letters.append((message, str(error), type(error).__name__))
            return
        self.instructions_handled += 1
        extra = {"execution_id": record["execution_id"], "ticket_id": ticket.ticket_id,
                 "correlation_id": record.get("correlation_id")}
        if record["instruction"] == "SUBMIT":
            trace_parent = next((value.decode() for name, value in tracing.passed_on(message.headers())
                                 if name == tracing.TRACEPARENT_HEADER), None)
            events = self.book.submit(record["execution_id"], record["instruction_id"], ticket,
                                      self.config.route(ticket.ticket_type.value), wall, trace_parent)
            log.info("SUBMIT %s taken", ticket.ticket_id, extra=extra)
        else:
            events = self.book.cancel(record["instruction_id"], ticket.ticket_id, wall)
            log.info("CANCEL %s taken", ticket.ticket_id, extra=extra)
        self._pending_events += events

    # -- FIX transport -------------------------------------------------------------------------------

    def _connect_due(self, now: float) -> None:
        for connection in self._connections.values():
            if connection.sock is None and now >= connection.next_attempt:
                self._connect(connection, now)

    def _connect(self, connection: _Connection, now: float) -> None:
        counterparty = connection.counterparty
        self.metrics.connects.labels(connection.name).inc()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex((counterparty.host, counterparty.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self._schedule_reconnect(connection, now, f"connect: {errno.errorcode.get(code, code)}")
            return
        connection.sock, connection.connecting = sock, True
        connection.reader = FixStreamReader()
        connection.write_buffer.clear()
        self._selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, connection)

    def _on_connected(self, connection: _Connection) -> None:
        assert connection.sock is not None
        code = connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code != 0:
            self._disconnect(connection, f"connect: {errno.errorcode.get(code, code)}")
            return
        connection.connecting = False
        self._selector.modify(connection.sock, selectors.EVENT_READ, connection)
        connection.session.connected(time.monotonic(), self._clock())
        log.info("connected to %s at %s:%d; Logon sent (MsgSeqNum %d, expecting %d)", connection.name,
                 connection.counterparty.host, connection.counterparty.port, connection.session.next_out_seq - 1,
                 connection.session.next_in_seq)

    def _schedule_reconnect(self, connection: _Connection, now: float, why: str) -> None:
        connection.backoff_s = min(max(connection.backoff_s * 2, self.config.reconnect_min_s),
                                   self.config.reconnect_max_s)
        connection.next_attempt = now + connection.backoff_s
        if self._stopping:
            return
        log.warning("FIX session %s down (%s); reconnecting in %.1fs", connection.name, why, connection.backoff_s)

    def _disconnect(self, connection: _Connection, why: str) -> None:
        if connection.sock is not None:
            try:
                self._selector.unregister(connection.sock)
            except (KeyError, ValueError):
                pass
            connection.sock.close()
        connection.sock, connection.connecting = None, False
        connection.write_buffer.clear()
        connection.session.disconnected()
        self.metrics.session_state.labels(connection.name).set(STATUS_GAUGE[SessionStatus.DISCONNECTED])
        self._session_dirty = True
        self._schedule_reconnect(connection, time.monotonic(), why)

    def _poll_sockets(self, timeout_s: float) -> None:
        for key, mask in self._selector.select(timeout_s):
            connection: _Connection = key.data
            if connection.sock is None:
                continue
            if connection.connecting:
                if mask & selectors.EVENT_WRITE:
                    self._on_connected(connection)
                continue
            if mask & selectors.EVENT_READ:
                self._read(connection)
            if mask & selectors.EVENT_WRITE and connection.sock is not None:
                self._write_some(connection)

    def _read(self, connection: _Connection) -> None:
        assert connection.sock is not None
        try:
            data = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._disconnect(connection, f"recv: {error}")
            return
        if not data:
            self._disconnect(connection, connection.session.logout_reason or "connection closed by the counterparty")
            return
        for item in connection.reader.feed(data):
            now, wall = time.monotonic(), self._clock()
            for message in connection.session.receive(item, now, wall):
                try:
                    self._pending_events += self.book.on_message(connection.name, message, wall)
                except FrameError as error:
                    self.metrics.garbled.labels(connection.name).inc()
                    log.error("unusable %s from %s: %s (%s)", MSG_TYPE_NAMES.get(message.msg_type, message.msg_type),
                              connection.name, error, message.to_text()[:300])
        self._session_dirty = True

    # -- per-session work: logon follow-up, sends, timers --------------------------------------------

    def _drive(self, connection: _Connection, now: float, wall: datetime) -> None:
        session = connection.session
        if connection.sock is not None and not connection.connecting:
            session.tick(now, wall)
        self.metrics.session_state.labels(connection.name).set(STATUS_GAUGE[session.status])
        if session.status is SessionStatus.ACTIVE:
            connection.backoff_s = 0.0
            if session.became_active:
                session.became_active = False
                self._reconcile(connection, "reconnect", self.book.open_orders(connection.name), now, wall)
            for outgoing in self.book.sendable(connection.name):
                self._send(connection, outgoing, now, wall)
            if now - connection.last_silence_check >= min(1.0, self.config.status_after_s / 4):
                connection.last_silence_check = now
                silent = self.book.silent_orders(connection.name, wall, self.config.status_after_s)
                self._reconcile(connection, "silence", silent, now, wall)
        self.metrics.orders_without_report.labels(connection.name).set(self.book.without_report(connection.name))

    def _send(self, connection: _Connection, outgoing: Outgoing, now: float, wall: datetime) -> None:
        if outgoing.cancel_cl_ord_id is None:
            body = with_transact_time(outgoing.body, wall)
        else:
            body = order_cancel_request(outgoing.body, outgoing.cancel_cl_ord_id, outgoing.cl_ord_id, wall)
        seq = connection.session.send_app(outgoing.msg_type, body, now, wall)
        self.book.mark_sent(outgoing, seq, wall)
        log.info("%s %s sent to %s as MsgSeqNum %d", MSG_TYPE_NAMES[outgoing.msg_type],
                 outgoing.cancel_cl_ord_id or outgoing.cl_ord_id, connection.name, seq,
                 extra={"ticket_id": outgoing.cl_ord_id})

    def _reconcile(self, connection: _Connection, trigger: str, orders: list[OrderRecord], now: float,
                   wall: datetime) -> None:
        """OrderStatusRequest for each order (RFC 5.4 option B); the answers go through `OrderBook`."""
        for order in orders:
            connection.status_requests += 1
            request_id = f"{order.cl_ord_id}:{connection.status_requests}"
            seq = connection.session.send_app(MsgType.ORDER_STATUS_REQUEST,
                                              order_status_request(order.body, order.cl_ord_id, request_id), now, wall)
            self.book.note_status_request(connection.name, seq, order.cl_ord_id)
            order.last_activity = wall
            self.book.dirty.add(order.cl_ord_id)
            self.metrics.reconciliations.labels(connection.name, trigger).inc()
        if orders:
            log.info("reconciliation (%s): OrderStatusRequest for %d order(s) on %s", trigger, len(orders),
                     connection.name)

    # -- commit, then write ------------------------------------------------------------------------

    def _commit_and_flush(self, now: float) -> None:
        outboxes = {name: c.session.take_outbox() for name, c in self._connections.items()}
        needs_reservation = any(outbox and max(seq for seq, _, _ in outbox) > self._connections[name].reserved_out_seq
                                for name, outbox in outboxes.items())
        has_work = bool(self._pending_events or self._pending_dead_letters or self._positions or self.book.dirty)
        sends_orders = any(msg_type in (MsgType.NEW_ORDER_SINGLE, MsgType.ORDER_CANCEL_REQUEST)
                           for outbox in outboxes.values() for _, msg_type, _ in outbox)
        if needs_reservation or sends_orders or (has_work and now - self._last_commit >= 0.02):
            self._commit(now)
        for name, outbox in outboxes.items():
            connection = self._connections[name]
            if connection.sock is None:
                continue
            for _, _, raw in outbox:
                connection.write_buffer += raw
            self._write_some(connection)
            if connection.session.close_requested and not connection.write_buffer:
                self._disconnect(connection, connection.session.logout_reason or "logout")

    def _write_some(self, connection: _Connection) -> None:
        if connection.sock is None or not connection.write_buffer:
            return
        try:
            sent = connection.sock.send(connection.write_buffer)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as error:
            self._disconnect(connection, f"send: {error}")
            return
        del connection.write_buffer[:sent]
        self._selector.modify(connection.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.write_buffer
                                                                       else 0), connection)

    def _commit(self, now: float, *, final: bool = False) -> None:
        """One Kafka transaction: events, dead letters, dirty order records, session numbers, offsets."""
        assert self._producer is not None and self._consumer is not None
        producer, topics = self._producer, self.config.topics
        events, self._pending_events = self._pending_events, []
        dead_letters, self._pending_dead_letters = self._pending_dead_letters, []
        positions, self._positions = self._positions, {}
        try:
            producer.begin_transaction()
            for event in events:
                order = self.book.orders.get(event.ticket_id)  # ClOrdID = ticket id
                trace = order.trace_parent if order is not None else None
                producer.produce(topics.order_events, key=event.execution_id.encode(),
                                 value=_ORDER_EVENT.encode(translate.order_event_to_record(event)),
                                 headers=[(tracing.TRACEPARENT_HEADER, trace.encode())] if trace else None)
            for message, reason, error_type in dead_letters:
                producer.produce(topics.dead_letters, key=message.key(), value=_DEAD_LETTER.encode({
                    "original_topic": message.topic(), "original_partition": message.partition(),
                    "original_offset": message.offset(), "original_key": message.key(),
                    "original_value": message.value(),
                    "original_headers": [{"key": k, "value": v} for k, v in list(message.headers() or [])],
                    "reason": reason, "error_type": error_type, "failed_at": self._clock(),
                    "instance_id": self.config.adapter_id,
                }))
            for order in self.book.take_dirty():
                producer.produce(self.config.state_topic, key=f"order/{order.cl_ord_id}".encode(),
                                 value=json.dumps(order.to_primitive(), separators=(",", ":")).encode())
            for name, connection in self._connections.items():
                session = connection.session
                if final:
                    connection.reserved_out_seq = session.next_out_seq - 1
                elif session.next_out_seq - 1 + 10 > connection.reserved_out_seq:
                    connection.reserved_out_seq = session.next_out_seq - 1 + self.config.seq_reservation
                state = {"next_in_seq": session.next_in_seq, "out_seq_reserved": connection.reserved_out_seq}
                producer.produce(self.config.state_topic, key=f"session/{name}".encode(),
                                 value=json.dumps(state).encode())
            if positions:
                offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in positions.items()]
                producer.send_offsets_to_transaction(offsets, self._consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
        except KafkaException as error:
            raise AdapterFatalError(f"Kafka transaction failed ({error}); restart to resume from the committed "
                                    "state") from error
        self._last_commit = now
        self._session_dirty = False
        self.metrics.transactions.inc()
        for event in events:
            self.metrics.order_events.labels(event.event_type.value).inc()
        self.metrics.dead_letters.inc(len(dead_letters))
        counters = self.book.counters
        for name, counter, total in (("duplicate", self.metrics.duplicate_reports, counters.duplicate_reports),
                                     ("stale", self.metrics.stale_reports, counters.stale_reports),
                                     ("unknown", self.metrics.unknown_reports, counters.unknown_reports),
                                     ("inferred", self.metrics.reconciled_events, counters.inferred_events)):
            if total > self._counted.get(name, 0):
                counter.inc(total - self._counted.get(name, 0))
                self._counted[name] = total

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The generation is still valid: commit what was consumed from these partitions now.
        if self._positions or self._pending_events or self.book.dirty:
            self._commit(time.monotonic())

    # -- stop ------------------------------------------------------------------------------------

    def _shutdown(self, timeout_s: float = 3.0) -> None:
        """Log out of every session, then commit the exact sequence numbers."""
        self._stopping = True
        now, wall = time.monotonic(), self._clock()
        for connection in self._connections.values():
            if connection.sock is not None and connection.session.status is SessionStatus.ACTIVE:
                connection.session.logout(now, wall, "adapter stopping")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(c.sock is not None and not c.connecting
                                                  for c in self._connections.values()):
            self._poll_sockets(0.05)
            now, wall = time.monotonic(), self._clock()
            for connection in self._connections.values():
                if connection.sock is not None:
                    connection.session.tick(now, wall)
                    if connection.session.status is not SessionStatus.LOGOUT_SENT:
                        connection.session.close_requested = True
            self._commit_and_flush(now)
        for connection in self._connections.values():
            if connection.sock is not None:
                self._disconnect(connection, "adapter stopped")
        self._commit(time.monotonic(), final=True)

    def close(self) -> None:
        for connection in self._connections.values():
            if connection.sock is not None:
                connection.sock.close()
                connection.sock = None
        self._selector.close()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None

    # -- facts -----------------------------------------------------------------------------------

    def session_status(self, name: str) -> SessionStatus:
        return self._connections[name].session.status

    def health(self) -> tuple[bool, str]:
        age = time.monotonic() - self.last_loop
        return age < 60, f"loop {age:.1f}s ago"

    def readiness(self) -> tuple[bool, str]:
        states = {name: c.session.status.value for name, c in self._connections.items()}
        ok = self.ready and all(state == SessionStatus.ACTIVE.value for state in states.values())
        return ok, json.dumps(states)

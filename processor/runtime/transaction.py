"""One Kafka transaction of the processor: produced records, consumed offsets, commit or abort.

Kafka only. State is not here: each task stages its own store writes and hands their changelog
records to this transaction when it prepares (`processor.runtime.task.Task.prepare_commit`).

The status is explicit and checked on every call (`validate_transaction_status`, the shape of
quixstreams' `PartitionTransaction`): OPEN -> PREPARED -> COMMITTED, or ABORTED from any status
but COMMITTED. An exception escaping any method leaves the transaction FAILED: from there only
`abort()` is allowed, so no code path can commit a transaction whose state it does not know.

    txn = KafkaTransaction(producer)
    txn.produce(topic, value, key=key, on_delivery=...)    # any number
    txn.prepare(offsets, consumer.consumer_group_metadata())  # flush, check deliveries, attach offsets
    txn.commit()                                              # or txn.abort()
"""

from __future__ import annotations

import enum
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

Headers = list[tuple[str, bytes]]
DeliveryCallback = Callable[[KafkaError | None, Message], None]

P = ParamSpec("P")
R = TypeVar("R")


class TransactionStatus(enum.Enum):
    OPEN = "open"
    PREPARED = "prepared"
    COMMITTED = "committed"
    ABORTED = "aborted"
    FAILED = "failed"  # an exception escaped a method: only abort() is allowed


class TransactionStateError(RuntimeError):
    """A method was called in a status that does not allow it."""


class DeliveryFailed(KafkaException):
    """A record of the transaction was not delivered; the transaction must be aborted.

    `message` is the record the broker refused (its topic, key and value), so the caller can tell
    which input caused it."""

    def __init__(self, error: KafkaError, message: Message) -> None:
        super().__init__(error)
        self.error = error
        self.message = message


class ProducerWedged(KafkaException):
    """A producer call did not return within its own timeout (plus a grace period).

    librdkafka up to 2.16 can block in `send_offsets_to_transaction` past its timeout when the
    group coordinator's connection was lost and does not come back in a way its coordinator
    request notices (confluentinc/librdkafka#5456 and #5511, fixed after 2.16.0): a broker restart
    mid-transaction does it (`test_broker_stopped_20s_mid_stream_and_restarted_processor_and_
    gateway_recover_with_nothing_lost`). The call still runs in its thread and the producer may
    not be used again, not even to abort: only a new producer with the same transactional.id
    (whose `init_transactions` fences this one and aborts its transaction) ends it."""

    def __init__(self, what: str, waited_s: float) -> None:
        super().__init__(KafkaError(KafkaError._TIMED_OUT, f"{what} did not return within {waited_s:.0f}s; "
                                    "the producer is wedged and must be replaced"))
        self.what, self.waited_s = what, waited_s


def call_bounded(what: str, call: Callable[[], object], timeout_s: float) -> None:
    """Run a producer call that has a timeout of its own in a daemon thread and wait for it at most
    `timeout_s` plus a grace period: a call that does not keep its timeout raises ProducerWedged
    instead of stopping the loop (and SIGTERM) for good. The thread costs tens of microseconds, once
    per commit. Exceptions of the call are raised here."""
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:  # handed to the waiting thread
            failure.append(error)
        finally:
            done.set()

    threading.Thread(target=run, name=f"producer-{what}", daemon=True).start()
    waited_s = timeout_s + _WEDGED_GRACE_S
    if not done.wait(waited_s):
        raise ProducerWedged(what, waited_s)
    if failure:
        raise failure[0]


_WEDGED_GRACE_S = 5.0


class _NotSent:
    """What a delivery callback is given for a record the producer refused at once."""

    def __init__(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int | None:
        return None

    def offset(self) -> int | None:
        return None


def validate_transaction_status(
    *allowed: TransactionStatus,
) -> Callable[[Callable[Concatenate[KafkaTransaction, P], R]], Callable[Concatenate[KafkaTransaction, P], R]]:
    """Refuse the call unless the status is one of `allowed`; an exception escaping it leaves FAILED."""

    def decorator(method: Callable[Concatenate[KafkaTransaction, P], R]) -> Callable[Concatenate[KafkaTransaction, P], R]:
        @functools.wraps(method)
        def wrapper(self: KafkaTransaction, *args: P.args, **kwargs: P.kwargs) -> R:
            if self.status not in allowed:
                names = ", ".join(status.value for status in allowed)
                raise TransactionStateError(f"transaction is {self.status.value}; {method.__name__}() needs {names}")
            try:
                return method(self, *args, **kwargs)
            except BaseException:
                self.status = TransactionStatus.FAILED
                raise

        return cast("Callable[Concatenate[KafkaTransaction, P], R]", wrapper)

    return decorator


class KafkaTransaction:
    def __init__(self, producer: Producer, *, timeout_s: float = 30.0) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        self._failed_delivery: DeliveryFailed | None = None
        self._on_delivery_plain = self._delivered(None)  # shared by records without a callback of their own
        self.records_produced = 0
        self.wedged: ProducerWedged | None = None  # set when a producer call did not return: see ProducerWedged
        producer.begin_transaction()
        self.status = TransactionStatus.OPEN

    @validate_transaction_status(TransactionStatus.OPEN)
    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Queue a record. Raises KafkaException if the producer refuses it at once (e.g. too large);
        `on_delivery` hears of that refusal too, as of one the broker sends back later."""
        callback = self._on_delivery_plain if on_delivery is None else self._delivered(on_delivery)
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": callback}
        if headers:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: serve deliveries, then retry
            except KafkaException as refused:
                error = refused.args[0] if refused.args else None
                if on_delivery is not None and isinstance(error, KafkaError):
                    on_delivery(error, cast(Message, _NotSent(topic, key, value)))  # Message's accessors, duck-typed
                raise
        self.records_produced += 1

    @validate_transaction_status(TransactionStatus.OPEN)
    def prepare(self, offsets: Sequence[TopicPartition], group_metadata: object) -> None:
        """Wait for every record's delivery (so their offsets are known), then attach the consumed
        offsets. Raises DeliveryFailed naming the first refused record, KafkaException otherwise."""
        if self._producer.flush(self._timeout_s) > 0:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "flush timed out", txn_requires_abort=True))
        if self._failed_delivery is not None:
            raise self._failed_delivery
        if offsets:
            positions = list(offsets)
            try:
                call_bounded("send_offsets_to_transaction", lambda: self._producer.send_offsets_to_transaction(
                    positions, group_metadata, self._timeout_s), self._timeout_s)
            except ProducerWedged as wedged:
                self.wedged = wedged
                raise
        self.status = TransactionStatus.PREPARED

    @validate_transaction_status(TransactionStatus.PREPARED)
    def commit(self) -> None:
        self._producer.commit_transaction(self._timeout_s)
        self.status = TransactionStatus.COMMITTED

    @validate_transaction_status(TransactionStatus.OPEN, TransactionStatus.PREPARED, TransactionStatus.FAILED)
    def abort(self) -> None:
        """Nothing produced becomes visible to `read_committed` readers. Raises ProducerWedged, without
        touching the producer, if a call of this transaction never returned: the producer must be
        replaced, and its successor aborts this transaction."""
        if self.wedged is not None:
            raise ProducerWedged(self.wedged.what, self.wedged.waited_s)
        self._producer.abort_transaction(self._timeout_s)
        self.status = TransactionStatus.ABORTED

    def _delivered(self, then: DeliveryCallback | None) -> DeliveryCallback:
        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None and self._failed_delivery is None:
                self._failed_delivery = DeliveryFailed(error, message)
            if then is not None:
                then(error, message)

        return on_delivery

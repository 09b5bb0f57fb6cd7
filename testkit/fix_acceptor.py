"""A SCRIPTED FIX 4.4 acceptor for tests: a test double, not a FIX engine.

It plays a counterparty for what QuickFIX/J's Executor cannot do: partial fills, cancels,
OrderStatusRequest answers, duplicate reports, a sequence gap, and fills that happen while the
adapter is down. Each order follows a script of steps (`Ack`, `Fill`, `Hold`, ...); everything it
sends is numbered and stored, so it can be resent on a ResendRequest (or gap-filled, as some
venues do), and what it sends while no one is connected waits in the store.

It counts every NewOrderSingle per ClOrdID (`new_orders`), which is how the tests prove that an
order was never sent twice. Its session handling is deliberately small and written apart from
`fix_adapter.session`, so the adapter's session layer is checked against something else.
Binds 127.0.0.1 on a free port; `stop()` closes the socket and joins its thread.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from fix_adapter.codec import FixEncoder, FixMessage, FixStreamReader, FrameError, MsgType, Tag, utc_timestamp

log = logging.getLogger(__name__)


# -- script steps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    """ExecutionReport New."""


@dataclass(frozen=True)
class Fill:
    """ExecutionReport Trade of `qty` at `price` (None: what remains); CumQty/AvgPx follow."""

    qty: Decimal | None = None
    price: Decimal = Decimal("100")


@dataclass(frozen=True)
class Reject:
    text: str = "rejected by the scripted acceptor"


@dataclass(frozen=True)
class Hold:
    """Stop; the remaining steps run on `release(cl_ord_id)` (connected or not)."""


@dataclass(frozen=True)
class RepeatLast:
    """Send the last ExecutionReport again: `same_seq` as a PossDup resend of its own MsgSeqNum,
    else under a new MsgSeqNum with PossResend=Y (an application-level duplicate, same ExecID)."""

    same_seq: bool = False


@dataclass(frozen=True)
class LoseNext:
    """Number the next message but do not send it: the adapter sees a gap and asks for a resend."""


Step = Ack | Fill | Reject | Hold | RepeatLast | LoseNext
Script = Callable[[FixMessage], list[Step]]


def ack_and_fill(order: FixMessage) -> list[Step]:
    return [Ack(), Fill()]


@dataclass
class _Order:
    cl_ord_id: str
    order_id: str
    symbol: str
    side: str
    qty: Decimal
    body: list[tuple[int, str]]  # the identity fields of the order (Product, Symbol, Side, ...)
    steps: list[Step] = field(default_factory=list)
    cum_qty: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    status: str = "A"  # OrdStatus: A pending new, 0 new, 1 partial, 2 filled, 4 canceled, 8 rejected
    exec_count: int = 0
    last_report_seq: int | None = None

    @property
    def avg_px(self) -> Decimal:
        return (self.notional / self.cum_qty) if self.cum_qty else Decimal(0)


class ScriptedFixAcceptor:
    def __init__(self, *, sender_comp_id: str = "SCRIPTED", target_comp_id: str = "ADAPTER",
                 script: Script = ack_and_fill, resend_mode: str = "resend") -> None:
        assert resend_mode in ("resend", "gapfill")
        self.sender_comp_id = sender_comp_id
        self.target_comp_id = target_comp_id
        self.script = script
        self.resend_mode = resend_mode  # answer a ResendRequest with the stored messages, or a GapFill over them
        self._encoder = FixEncoder("FIX.4.4", sender_comp_id, target_comp_id)
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.RLock()
        self._conn: socket.socket | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-fix-acceptor", daemon=True)
        self._next_out = 1
        self._next_in = 1
        self._store: dict[int, tuple[str, list[tuple[int, str]], datetime]] = {}  # seq -> (type, body, sending time)
        self._lose_next = False
        self._orders: dict[str, _Order] = {}
        self._exec_ids = 0
        self.new_orders: Counter[str] = Counter()  # NewOrderSingle received per ClOrdID
        self.received: list[FixMessage] = []
        self.logons = 0
        self.resend_requests_received = 0

    # -- control -----------------------------------------------------------------------------------

    def start(self) -> ScriptedFixAcceptor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        # shutdown() wakes the thread blocked in recv()/accept(); close() alone does not.
        with self._lock:
            sockets = [s for s in (self._conn, self._server) if s is not None]
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._thread.join(10)
        assert not self._thread.is_alive(), "scripted acceptor thread did not stop"

    def release(self, cl_ord_id: str) -> None:
        """Run the steps after a Hold (sent now if connected, else stored for a resend or a status answer)."""
        with self._lock:
            self._run(self._orders[cl_ord_id])

    def received_types(self) -> list[str]:
        with self._lock:
            return [m.msg_type for m in self.received]

    @property
    def connected(self) -> bool:
        return self._conn is not None

    # -- the server -------------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._conn = conn
            reader = FixStreamReader()
            try:
                while not self._stopped.is_set():
                    data = conn.recv(65536)
                    if not data:
                        break
                    for item in reader.feed(data):
                        if isinstance(item, FrameError):
                            continue
                        with self._lock:
                            self._on_message(item)
            except OSError:
                pass
            finally:
                with self._lock:
                    self._conn = None
                conn.close()

    def _write(self, raw: bytes) -> None:
        if self._conn is not None:
            try:
                self._conn.sendall(raw)
            except OSError:
                pass

    def _send(self, msg_type: str, body: list[tuple[int, str]]) -> int:
        seq = self._next_out
        self._next_out += 1
        now = datetime.now(UTC)
        self._store[seq] = (msg_type, body, now)
        if self._lose_next:
            self._lose_next = False
            return seq
        self._write(self._encoder.encode(msg_type, seq, body, sending_time=now))
        return seq

    # -- session ---------------------------------------------------------------------------------------

    def _on_message(self, message: FixMessage) -> None:
        self.received.append(message)
        msg_type, seq = message.msg_type, message.seq_num
        if msg_type == MsgType.LOGON:
            self.logons += 1
            self._send(MsgType.LOGON, [(Tag.ENCRYPT_METHOD, "0"), (Tag.HEART_BT_INT, message.get(Tag.HEART_BT_INT) or "30")])
        if msg_type == MsgType.SEQUENCE_RESET:
            new_seq = message.integer(Tag.NEW_SEQ_NO) or seq
            self._next_in = max(self._next_in, new_seq)
            return
        if seq > self._next_in:
            # A gap (the adapter restarted above its last number): ask for it; it answers with a GapFill.
            self._send(MsgType.RESEND_REQUEST, [(Tag.BEGIN_SEQ_NO, str(self._next_in)), (Tag.END_SEQ_NO, "0")])
            self._next_in = seq + 1
        elif seq < self._next_in:
            if not message.poss_dup:
                log.error("scripted acceptor: MsgSeqNum %d below %d", seq, self._next_in)
            return
        else:
            self._next_in = seq + 1
        if msg_type == MsgType.TEST_REQUEST:
            self._send(MsgType.HEARTBEAT, [(Tag.TEST_REQ_ID, message.get(Tag.TEST_REQ_ID) or "")])
        elif msg_type == MsgType.RESEND_REQUEST:
            self.resend_requests_received += 1
            self._resend(message.integer(Tag.BEGIN_SEQ_NO) or 1)
        elif msg_type == MsgType.LOGOUT:
            self._send(MsgType.LOGOUT, [])
        elif msg_type == MsgType.NEW_ORDER_SINGLE:
            self._on_new_order(message)
        elif msg_type == MsgType.ORDER_CANCEL_REQUEST:
            self._on_cancel(message)
        elif msg_type == MsgType.ORDER_STATUS_REQUEST:
            self._on_status_request(message)

    def _resend(self, begin: int) -> None:
        end = self._next_out - 1
        seq = begin
        while seq <= end:
            msg_type, body, sent_at = self._store[seq]
            if msg_type in (MsgType.EXECUTION_REPORT, MsgType.ORDER_CANCEL_REJECT) and self.resend_mode == "resend":
                self._write(self._encoder.encode(msg_type, seq, body, sending_time=datetime.now(UTC), poss_dup=True,
                                                 orig_sending_time=sent_at))
                seq += 1
                continue
            gap_end = seq
            while gap_end <= end and (self.resend_mode == "gapfill" or self._store[gap_end][0] not in
                                      (MsgType.EXECUTION_REPORT, MsgType.ORDER_CANCEL_REJECT)):
                gap_end += 1
            self._write(self._encoder.encode(MsgType.SEQUENCE_RESET, seq,
                                             [(Tag.GAP_FILL_FLAG, "Y"), (Tag.NEW_SEQ_NO, str(gap_end))],
                                             sending_time=datetime.now(UTC), poss_dup=True, orig_sending_time=sent_at))
            seq = gap_end

    # -- orders --------------------------------------------------------------------------------------

    def _on_new_order(self, message: FixMessage) -> None:
        cl_ord_id = message.require(Tag.CL_ORD_ID)
        self.new_orders[cl_ord_id] += 1
        if cl_ord_id in self._orders:
            return  # a duplicate ClOrdID: counted, not booked again
        identity = [(t, v) for t, v in message.fields if t in (Tag.PRODUCT, Tag.SYMBOL, Tag.SIDE, Tag.CURRENCY)]
        order = _Order(cl_ord_id, f"SCR-{len(self._orders) + 1}", message.get(Tag.SYMBOL) or "",
                       message.get(Tag.SIDE) or "1", Decimal(message.require(Tag.ORDER_QTY)), identity)
        order.steps = list(self.script(message))
        self._orders[cl_ord_id] = order
        self._run(order)

    def _run(self, order: _Order) -> None:
        while order.steps:
            step = order.steps.pop(0)
            if isinstance(step, Hold):
                return
            if isinstance(step, LoseNext):
                self._lose_next = True
            elif isinstance(step, Ack):
                order.status = "0"
                self._report(order, "0")
            elif isinstance(step, Reject):
                order.status = "8"
                self._report(order, "8", text=step.text)
            elif isinstance(step, Fill):
                qty = step.qty if step.qty is not None else order.qty - order.cum_qty
                order.cum_qty += qty
                order.notional += qty * step.price
                order.status = "2" if order.cum_qty >= order.qty else "1"
                self._report(order, "F", last=(qty, step.price))
            elif isinstance(step, RepeatLast):
                assert order.last_report_seq is not None
                msg_type, body, sent_at = self._store[order.last_report_seq]
                if step.same_seq:
                    self._write(self._encoder.encode(msg_type, order.last_report_seq, body, sending_time=datetime.now(UTC),
                                                     poss_dup=True, orig_sending_time=sent_at))
                else:
                    self._send(msg_type, [*body, (Tag.POSS_RESEND, "Y")])

    def _report(self, order: _Order, exec_type: str, *, text: str | None = None,
                last: tuple[Decimal, Decimal] | None = None, exec_id: str | None = None,
                rej_reason: str | None = None) -> None:
        self._exec_ids += 1
        body = [(Tag.ORDER_ID, order.order_id), (Tag.CL_ORD_ID, order.cl_ord_id),
                (Tag.EXEC_ID, exec_id or f"X{self._exec_ids}"), (Tag.EXEC_TYPE, exec_type), (Tag.ORD_STATUS, order.status),
                *order.body, (Tag.ORDER_QTY, str(order.qty)), (Tag.LEAVES_QTY, str(max(order.qty - order.cum_qty, 0)
                                                                                      if order.status in "01A2" else 0)),
                (Tag.CUM_QTY, str(order.cum_qty)), (Tag.AVG_PX, str(order.avg_px)),
                (Tag.TRANSACT_TIME, utc_timestamp(datetime.now(UTC)))]
        if last is not None:
            body += [(Tag.LAST_QTY, str(last[0])), (Tag.LAST_PX, str(last[1]))]
        if text is not None:
            body.append((Tag.TEXT, text))
        if rej_reason is not None:
            body.append((Tag.ORD_REJ_REASON, rej_reason))
        seq = self._send(MsgType.EXECUTION_REPORT, body)
        if exec_type != "I":
            order.last_report_seq = seq

    def _on_cancel(self, message: FixMessage) -> None:
        orig = message.require(Tag.ORIG_CL_ORD_ID)
        order = self._orders.get(orig)
        if order is None or order.status in ("2", "4", "8"):
            self._send(MsgType.ORDER_CANCEL_REJECT, [
                (Tag.ORDER_ID, order.order_id if order else "NONE"), (Tag.CL_ORD_ID, message.require(Tag.CL_ORD_ID)),
                (Tag.ORIG_CL_ORD_ID, orig), (Tag.ORD_STATUS, order.status if order else "8"),
                (Tag.CXL_REJ_RESPONSE_TO, "1"), (Tag.CXL_REJ_REASON, "0" if order else "1"),
                (Tag.TEXT, "too late to cancel" if order else "unknown order")])
            return
        order.steps.clear()
        order.status = "6"
        self._report(order, "6")
        order.status = "4"
        self._report(order, "4", text="canceled on request")

    def _on_status_request(self, message: FixMessage) -> None:
        cl_ord_id = message.require(Tag.CL_ORD_ID)
        order = self._orders.get(cl_ord_id)
        self._exec_ids += 1
        if order is None:
            self._send(MsgType.EXECUTION_REPORT, [
                (Tag.ORDER_ID, "NONE"), (Tag.CL_ORD_ID, cl_ord_id), (Tag.EXEC_ID, f"S{self._exec_ids}"),
                (Tag.EXEC_TYPE, "I"), (Tag.ORD_STATUS, "8"), (Tag.ORD_REJ_REASON, "5"), (Tag.SYMBOL, "NA"),
                (Tag.SIDE, "1"), (Tag.LEAVES_QTY, "0"), (Tag.CUM_QTY, "0"), (Tag.AVG_PX, "0"),
                (Tag.TEXT, "unknown order")])
            return
        self._report(order, "I", exec_id=f"S{self._exec_ids}")

"""Pydantic models of the HTTP API: request bodies (validated) and response bodies (documented).

Decimals are JSON strings in plain notation (`"25"`, `"149.80"`), never numbers; timestamps are
RFC 3339 strings with an offset. Request models refuse unknown fields. Response bodies are
built field by field in `gateway.views` (no pydantic on the hot read path); these models are
their contract: the OpenAPI document is generated from them and the tests validate real
responses against them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from execution_domain.events import OrderEventType
from execution_domain.execution_state import ExecutionState
from execution_domain.policy import CriticalSells, OnCriticalRejection, OrderType, PartialFunding, TimeInForce
from execution_domain.proposal import GateDecisionValue, Side
from execution_domain.ticket_state import TicketState

# -- field types ----------------------------------------------------------------------------------

DECIMAL_PATTERN = r"^-?[0-9]{1,30}(\.[0-9]{1,30})?$"
UNSIGNED_DECIMAL_PATTERN = r"^[0-9]{1,30}(\.[0-9]{1,30})?$"

DecimalString = Annotated[str, Field(pattern=DECIMAL_PATTERN, max_length=64, examples=["149.80"],
                                     description="Decimal in plain notation, as a string.")]
UnsignedDecimalString = Annotated[str, Field(pattern=UNSIGNED_DECIMAL_PATTERN, max_length=64, examples=["25"],
                                             description="Non-negative decimal in plain notation, as a string.")]
Identifier = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(max_length=1000)]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD"])]
AvroInt = Annotated[StrictInt, Field(ge=1, le=2**31 - 1)]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-23:59 is past datetime.max in UTC
        raise ValueError("timestamp out of range") from None


Timestamp = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- POST /rebalance/executions -------------------------------------------------------------------


class Actor(_Request):
    """Who asks (RFC §5.1 `actor`). The execution records the bearer token's principal as
    `requested_by`; a `requested_by` sent here is only logged beside it."""

    requested_by: Identifier | None = Field(
        default=None, examples=["advisor_001"],
        description="Ignored for authorization and not recorded: the token's principal is. Logged as claimed.")
    channel: Identifier = Field(examples=["ADVISOR_APP"])


class ExecutionPolicyRequest(_Request):
    """How to execute (glossary: ExecutionPolicy). Only `max_slippage_bps` is required."""

    time_in_force: TimeInForce = TimeInForce.DAY
    order_type: OrderType = OrderType.MARKET
    allow_partial_fills: StrictBool = True
    max_slippage_bps: UnsignedDecimalString
    dry_run: StrictBool = False
    critical_sells: CriticalSells = CriticalSells.FUNDING
    partial_funding: PartialFunding = PartialFunding.SCALE_DOWN
    on_critical_rejection: OnCriticalRejection = Field(
        default=OnCriticalRejection.CANCEL_REMAINING,
        description="When a critical rejection turns the execution REJECTED: CANCEL_REMAINING cancels the "
                    "orders still working, LET_RUN lets them finish (their fills are still folded).")


class GateReason(_Request):
    code: Identifier
    message: Text


class GateDecision(_Request):
    decision: GateDecisionValue
    reasons: list[GateReason] = Field(max_length=100)
    decided_at: Timestamp


class _IntentBase(_Request):
    intent_id: Identifier
    dependencies: list[Identifier] = Field(max_length=1000)


class SecurityTradeIntent(_IntentBase):
    intent_type: Literal["SECURITY_TRADE"]
    instrument_id: Identifier
    side: Side
    quantity: DecimalString
    currency: CurrencyCode
    indicative_price: DecimalString


class FxSpotIntent(_IntentBase):
    intent_type: Literal["FX_SPOT"]
    pair: Annotated[str, Field(max_length=16, examples=["USD/SGD"])]
    buy_currency: CurrencyCode
    buy_amount: DecimalString
    sell_currency: CurrencyCode
    sell_amount_estimated: DecimalString


class CashFlowIntent(_IntentBase):
    intent_type: Literal["CASH_FLOW"]
    currency: CurrencyCode
    amount: DecimalString
    description: Text


Intent = Annotated[SecurityTradeIntent | FxSpotIntent | CashFlowIntent, Field(discriminator="intent_type")]


class TradesAndFunding(_Request):
    funding_claimed: StrictBool
    intents: list[Intent] = Field(max_length=1000)


class ProposalArtifact(_Request):
    """The whole proposal version inline (RFC §3), as RFC-0014E publishes it; its
    `proposal_version_hash` must match its content."""

    proposal_id: Identifier
    version_no: AvroInt
    proposal_version_hash: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    portfolio_id: Identifier
    base_currency: CurrencyCode
    created_at: Timestamp
    gate_decision: GateDecision
    trades_and_funding: TradesAndFunding


class CreateExecutionRequest(_Request):
    """RFC §5.1 body, optionally with the proposal artifact inline (RFC §3)."""

    proposal_id: Identifier = Field(examples=["prop_123"])
    version_no: AvroInt = Field(examples=[2])
    execution_policy: ExecutionPolicyRequest
    actor: Actor
    artifact: ProposalArtifact | None = Field(
        default=None, description="The proposal version inline, when it is not published upstream (RFC §3).")


# -- POST /rebalance/executions/{execution_id}/cancel ----------------------------------------------


class CancelExecutionRequest(_Request):
    actor: Actor
    reason: Text | None = None


# -- POST /rebalance/executions/{execution_id}/events (OMS webhook, RFC §5.4 option A) -------------


class OrderEventDetailsRequest(_Request):
    """Per fill (`fill_id`, `last_qty`, `last_price`) or cumulative (`filled_qty`, `avg_price`);
    `reason` for rejections and cancels."""

    fill_id: Identifier | None = None
    last_qty: UnsignedDecimalString | None = None
    last_price: UnsignedDecimalString | None = None
    filled_qty: UnsignedDecimalString | None = None
    avg_price: UnsignedDecimalString | None = None
    reason: Text | None = None

    @model_validator(mode="after")
    def _fill_fields_agree(self) -> OrderEventDetailsRequest:
        per_fill = (self.fill_id, self.last_qty, self.last_price)
        if any(value is not None for value in per_fill) and any(value is None for value in per_fill):
            raise ValueError("a per-fill report needs fill_id, last_qty and last_price together")
        for name in ("last_qty", "last_price"):
            value = getattr(self, name)
            if value is not None and Decimal(value) <= 0:
                raise ValueError(f"{name} must be > 0")
        if (self.avg_price is None) != (self.filled_qty is None):
            raise ValueError("a cumulative report needs filled_qty and avg_price together")
        return self


class OrderEventRequest(_Request):
    """One OMS report about one ticket's order."""

    event_id: Identifier | None = Field(
        default=None,
        description="The OMS's unique report id (FIX ExecID), the dedup key. When absent the gateway "
                    "uses 'wh-' + hex sha256 of the raw body, so a redelivered webhook deduplicates.")
    execution_id: Identifier | None = Field(default=None, description="If given, must equal the path's.")
    source: Identifier = Field(examples=["OMS_X"])
    event_type: OrderEventType
    external_order_id: Identifier | None = Field(default=None, examples=["OMS12345"])
    ticket_id: Identifier
    occurred_at: Timestamp
    details: OrderEventDetailsRequest = Field(default_factory=OrderEventDetailsRequest)


# -- responses ------------------------------------------------------------------------------------


class ActorView(_Response):
    requested_by: str
    channel: str


class ExecutionPolicyView(_Response):
    time_in_force: TimeInForce
    order_type: OrderType
    allow_partial_fills: bool
    max_slippage_bps: DecimalString
    dry_run: bool
    critical_sells: CriticalSells
    partial_funding: PartialFunding
    on_critical_rejection: OnCriticalRejection


class Lineage(_Response):
    request_hash: str = Field(description="Canonical hash of the create request (RFC §8.1).")
    proposal_version_hash: str


class _TicketView(_Response):
    ticket_id: str
    intent_id: str
    order_type: OrderType
    time_in_force: TimeInForce
    dependencies: list[str]
    status: TicketState
    released: bool = Field(description="Released for submission: its dependencies fund it and it is not a dry run.")
    order_quantity: DecimalString = Field(description="What fills count against; below the generated "
                                                         "quantity once scaled down.")
    filled_qty: DecimalString
    avg_price: DecimalString | None
    overfill_qty: DecimalString
    external_order_id: str | None
    last_event_at: datetime | None
    reason: str | None


class SecurityOrderConstraints(_Response):
    max_slippage_bps: DecimalString


class SecurityOrderTicketView(_TicketView):
    ticket_type: Literal["SECURITY_ORDER"]
    instrument_id: str
    side: Side
    quantity: DecimalString
    currency: str
    constraints: SecurityOrderConstraints


class FxSpotOrderTicketView(_TicketView):
    ticket_type: Literal["FX_SPOT_ORDER"]
    pair: str
    buy_currency: str
    buy_amount: DecimalString
    sell_currency: str
    sell_amount_estimated: DecimalString


class CashTransferTicketView(_TicketView):
    ticket_type: Literal["CASH_TRANSFER"]
    currency: str
    amount: DecimalString


TicketView = Annotated[
    SecurityOrderTicketView | FxSpotOrderTicketView | CashTransferTicketView, Field(discriminator="ticket_type")
]


class LifecycleEvent(_Response):
    seq: int
    kind: str
    ticket_id: str | None
    event_type: OrderEventType | None
    event_id: str | None
    from_state: str | None
    to_state: str | None
    reason: str | None
    occurred_at: datetime
    source: str | None = Field(None, description="The reporting OMS or adapter (OrderEvent.source) of the order "
                                                 "event the row applied; null for rows caused by a command.")


class _ExecutionHeader(_Response):
    """What an execution and its list entry share."""

    execution_id: str
    proposal_id: str
    version_no: int
    portfolio_id: str
    status: ExecutionState
    dry_run: bool
    created_at: datetime
    updated_at: datetime
    ticket_count: int
    open_ticket_count: int = Field(description="Tickets not yet terminal: orders still working at the OMS, or "
                                               "not yet released.")
    is_complete: bool = Field(description="Every ticket is terminal (open_ticket_count = 0): the status is "
                                          "final, except that a late fill may still be folded.")
    lineage: Lineage


class ExecutionLinks(_Response):
    self: str = Field(description="This execution.")
    events: str = Field(description="Its whole lifecycle log, paged (GET, ascending by seq).")


class Execution(_ExecutionHeader):
    """RFC §5.1 response and §5.2 body: summary, tickets with per-ticket status, the most recent
    lifecycle events (the whole log is paged at `links.events`)."""

    execution_policy: ExecutionPolicyView
    actor: ActorView
    tickets: list[TicketView]
    event_count: int = Field(description="Rows of the whole lifecycle log so far (the last row's seq).")
    events: list[LifecycleEvent] = Field(
        description="The most recent lifecycle rows (at most 50), ascending by seq; the answers of create and "
                    "cancel carry none. The whole log: links.events.")
    anomaly_count: int
    links: ExecutionLinks


class ExecutionSummary(_ExecutionHeader):
    pass


class ExecutionPage(_Response):
    items: list[ExecutionSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    limit: int


class ExecutionEventPage(_Response):
    """A page of an execution's lifecycle log, ascending by seq."""

    execution_id: str
    event_count: int = Field(description="Rows of the whole log so far.")
    items: list[LifecycleEvent]
    next: str | None = Field(description="The next page (GET), while more rows are held; null on the last. To "
                                         "follow a log that is still growing, ask again with after_seq = the "
                                         "last seq received.")
    limit: int


class CommandPending(_Response):
    """The processor did not answer within the wait bound; the command is queued."""

    execution_id: str
    command_id: str
    status: Literal["PENDING"]
    detail: str


class CancelAccepted(_Response):
    execution_id: str
    command_id: str
    cancel: Literal["ACCEPTED", "PENDING"] = Field(
        description="ACCEPTED: the processor applied it; PENDING: not answered within the wait bound.")
    execution: Execution | None


class EventAccepted(_Response):
    event_id: str
    execution_id: str
    ticket_id: str


class Health(_Response):
    status: Literal["ok", "failing", "ready", "not-ready"]
    checks: dict[str, str]


class ProblemError(_Response):
    path: str
    code: str
    message: str


class Problem(_Response):
    """RFC 9457 problem details; `type` is stable per error (see docs/gateway.md)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    correlation_id: str | None = None
    errors: list[ProblemError] | None = None
    execution_id: str | None = None
    existing_execution_id: str | None = None

"""The RFC §9 `ExecutionProvider` port over Kafka: what an OMS adapter consumes.

`submit_tickets` and `cancel_ticket` publish `TicketInstruction` records (SUBMIT / CANCEL) on
the trade-tickets topic, keyed by ticket_id, through the task's journal: an
instruction is visible to the OMS exactly when the state change that released it is
committed, and never twice. The OMS answers asynchronously with `OrderEvent`s, so a submit's
result only says the instruction was handed over.

Kafka offers no synchronous status query; `fetch_status` answers from the processor's own
fold of the OMS's reports for the execution in hand (the one the provider is bound to).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from execution_domain import Execution, Ticket
from execution_domain.ports import CancelResult, OrderStatus, SubmitResult, TicketSubmission
from processor.outputs import Outputs
from wire import records as translate


@dataclass(frozen=True, slots=True)
class _Binding:
    execution: Execution
    correlation_id: str | None
    issued_at: datetime
    cause_id: str


class NotBoundError(RuntimeError):
    """The provider was used outside the fold of an execution."""


class KafkaExecutionProvider:
    def __init__(self, outputs: Outputs) -> None:
        self._outputs = outputs
        self._binding: _Binding | None = None
        self.submitted = 0
        self.cancel_requests = 0

    @contextmanager
    def bound(self, execution: Execution, *, correlation_id: str | None,
              issued_at: datetime, cause_id: str) -> Iterator[KafkaExecutionProvider]:
        self._binding = _Binding(execution, correlation_id, issued_at, cause_id)
        try:
            yield self
        finally:
            self._binding = None

    def rebind(self, execution: Execution) -> None:
        """Follow the execution as the fold moves it on (tickets scaled, states changed)."""
        binding = self._require(execution.execution_id)
        self._binding = _Binding(execution, binding.correlation_id, binding.issued_at, binding.cause_id)

    # -- the port ----------------------------------------------------------------------

    def submit_tickets(self, execution_id: str, tickets: Sequence[Ticket]) -> SubmitResult:
        binding = self._require(execution_id)
        for ticket in tickets:
            self._instruct(binding, "SUBMIT", ticket, f"{execution_id}/{ticket.ticket_id}/submit")
        self.submitted += len(tickets)
        return SubmitResult(execution_id, tuple(TicketSubmission(t.ticket_id, accepted=True) for t in tickets))

    def cancel_ticket(self, ticket_id: str) -> CancelResult:
        binding = self._require(None)
        if ticket_id not in binding.execution.records:
            return CancelResult(ticket_id, accepted=False, reason=f"no ticket {ticket_id} in {binding.execution.execution_id}")
        ticket = binding.execution.effective_ticket(ticket_id)
        self._instruct(binding, "CANCEL", ticket, f"{binding.execution.execution_id}/{ticket_id}/cancel/{binding.cause_id}")
        self.cancel_requests += 1
        return CancelResult(ticket_id, accepted=True)

    def fetch_status(self, external_order_id: str) -> OrderStatus:
        binding = self._require(None)
        for record in binding.execution.records.values():
            if record.external_order_id == external_order_id:
                return OrderStatus(external_order_id, record.ticket_id, record.state, record.filled_qty,
                                   record.avg_price, record.reason)
        raise LookupError(f"no order {external_order_id} in execution {binding.execution.execution_id}")

    # -- internals ---------------------------------------------------------------------

    def _instruct(self, binding: _Binding, instruction: translate.InstructionType, ticket: Ticket,
                  instruction_id: str) -> None:
        record = translate.ticket_instruction_record(
            instruction_id=instruction_id, instruction=instruction, execution=binding.execution, ticket=ticket,
            correlation_id=binding.correlation_id, issued_at=binding.issued_at,
        )
        self._outputs.ticket_instruction(record, ticket.ticket_id)

    def _require(self, execution_id: str | None) -> _Binding:
        binding = self._binding
        if binding is None:
            raise NotBoundError("KafkaExecutionProvider is used inside the fold of an execution only")
        if execution_id is not None and execution_id != binding.execution.execution_id:
            raise NotBoundError(f"bound to {binding.execution.execution_id}, asked about {execution_id}")
        return binding

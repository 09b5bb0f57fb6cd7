"""The approved proposal artifact (RFC-0014E, as that system publishes it) and its validation.

Validation runs in two phases and reports every problem of a phase at once, each with a
path such as ``trades_and_funding.intents[2].dependencies[0]``:

1. structure (pydantic): missing/unknown fields, wrong types, malformed decimals;
2. meaning (only on a well-formed artifact): duplicate intent ids, unknown, duplicate,
   cyclic or out-of-order dependencies, non-positive quantities, FX pairs that do not match
   their currencies, unfunded foreign-currency BUYs (when funding is claimed), and a
   ``proposal_version_hash`` that does not match the content.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
)

from execution_domain.canonical import canonical_sha256, decimal_from_str, to_primitive

__all__ = [
    "ArtifactInvalid",
    "CashFlowIntent",
    "FxSpotIntent",
    "GateDecision",
    "GateDecisionValue",
    "GateReason",
    "Intent",
    "IntentType",
    "ProposalArtifact",
    "SecurityTradeIntent",
    "Side",
    "TradesAndFunding",
    "ValidationProblem",
    "check_artifact",
    "compute_proposal_version_hash",
    "parse_artifact",
    "seal_artifact",
    "ticket_group",
    "validate_artifact",
]


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class IntentType(StrEnum):
    SECURITY_TRADE = "SECURITY_TRADE"
    FX_SPOT = "FX_SPOT"
    CASH_FLOW = "CASH_FLOW"


class GateDecisionValue(StrEnum):
    EXECUTION_READY = "EXECUTION_READY"
    BLOCKED = "BLOCKED"
    PENDING_REVIEW = "PENDING_REVIEW"


def _decimal_input(value: Any) -> Decimal:
    # Strings (the wire form) or ints; floats and bools are refused so no binary rounding sneaks in.
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("expected a decimal string such as '10' or '149.80'")
    return Decimal(value) if isinstance(value, int) else decimal_from_str(value)


DecimalValue = Annotated[Decimal, BeforeValidator(_decimal_input)]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Identifier = Annotated[str, Field(min_length=1)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GateReason(_Frozen):
    code: Identifier
    message: str


class GateDecision(_Frozen):
    decision: GateDecisionValue
    reasons: tuple[GateReason, ...]
    decided_at: AwareDatetime


class SecurityTradeIntent(_Frozen):
    intent_type: Literal[IntentType.SECURITY_TRADE]
    intent_id: Identifier
    dependencies: tuple[Identifier, ...]
    instrument_id: Identifier
    side: Side
    quantity: DecimalValue
    currency: CurrencyCode
    indicative_price: DecimalValue


class FxSpotIntent(_Frozen):
    intent_type: Literal[IntentType.FX_SPOT]
    intent_id: Identifier
    dependencies: tuple[Identifier, ...]
    pair: str
    buy_currency: CurrencyCode
    buy_amount: DecimalValue
    sell_currency: CurrencyCode
    sell_amount_estimated: DecimalValue


class CashFlowIntent(_Frozen):
    intent_type: Literal[IntentType.CASH_FLOW]
    intent_id: Identifier
    dependencies: tuple[Identifier, ...]
    currency: CurrencyCode
    amount: DecimalValue  # signed: + into the portfolio, - out of it
    description: str


Intent = Annotated[
    SecurityTradeIntent | FxSpotIntent | CashFlowIntent,
    Field(discriminator="intent_type"),
]


class TradesAndFunding(_Frozen):
    # True when the artifact asserts every BUY outside the base currency depends on an FX funding it.
    funding_claimed: StrictBool
    intents: tuple[Intent, ...]


class ProposalArtifact(_Frozen):
    proposal_id: Identifier
    version_no: Annotated[StrictInt, Field(ge=1)]
    proposal_version_hash: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    portfolio_id: Identifier
    base_currency: CurrencyCode
    created_at: AwareDatetime
    gate_decision: GateDecision
    trades_and_funding: TradesAndFunding

    @property
    def is_execution_ready(self) -> bool:
        return self.gate_decision.decision is GateDecisionValue.EXECUTION_READY

    def intent(self, intent_id: str) -> SecurityTradeIntent | FxSpotIntent | CashFlowIntent:
        for candidate in self.trades_and_funding.intents:
            if candidate.intent_id == intent_id:
                return candidate
        raise KeyError(intent_id)

    def to_primitive(self) -> dict[str, Any]:
        primitive = to_primitive(self.model_dump(mode="python"))
        assert isinstance(primitive, dict)
        return primitive


@dataclass(frozen=True, slots=True)
class ValidationProblem:
    path: str
    code: str
    message: str

    def to_primitive(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}


class ArtifactInvalid(ValueError):
    def __init__(self, problems: Sequence[ValidationProblem]) -> None:
        self.problems = tuple(problems)
        summary = "; ".join(f"{p.path}: {p.code}" for p in self.problems)
        super().__init__(f"proposal artifact invalid ({len(self.problems)} problems): {summary}")


_PLACEHOLDER_HASH = "sha256:" + "0" * 64
_PAIR = re.compile(r"([A-Z]{3})/([A-Z]{3})")
_INTENTS_PATH = "trades_and_funding.intents"


def compute_proposal_version_hash(artifact: ProposalArtifact) -> str:
    """``"sha256:" + hex(sha256(canonical_json(artifact without proposal_version_hash)))``."""
    content = artifact.to_primitive()
    del content["proposal_version_hash"]
    return canonical_sha256(content)


def seal_artifact(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``raw`` in canonical primitive form with its correct ``proposal_version_hash``.

    What the upstream publisher does before publishing; used to (re)compute sample hashes.
    Raises ArtifactInvalid if the structure is invalid.
    """
    draft = ProposalArtifact.model_validate({**raw, "proposal_version_hash": _PLACEHOLDER_HASH})
    sealed = draft.model_copy(update={"proposal_version_hash": compute_proposal_version_hash(draft)})
    return sealed.to_primitive()


def validate_artifact(raw: Mapping[str, Any]) -> tuple[ValidationProblem, ...]:
    """Every problem with ``raw`` (empty when it is a valid artifact)."""
    try:
        artifact = ProposalArtifact.model_validate(raw)
    except ValidationError as error:
        return _structural_problems(error)
    return _semantic_problems(artifact)


def check_artifact(artifact: ProposalArtifact) -> tuple[ValidationProblem, ...]:
    """The meaning-level problems of an already well-formed artifact (hash, dependencies, ...)."""
    return _semantic_problems(artifact)


def parse_artifact(raw: Mapping[str, Any]) -> ProposalArtifact:
    """The validated artifact, or ArtifactInvalid carrying every problem found."""
    try:
        artifact = ProposalArtifact.model_validate(raw)
    except ValidationError as error:
        raise ArtifactInvalid(_structural_problems(error)) from None
    problems = _semantic_problems(artifact)
    if problems:
        raise ArtifactInvalid(problems)
    return artifact


# --- structure ---------------------------------------------------------------------------

_STRUCTURAL_CODES = {
    "missing": "MISSING_FIELD",
    "extra_forbidden": "UNKNOWN_FIELD",
    "union_tag_invalid": "UNKNOWN_INTENT_TYPE",
    "union_tag_not_found": "UNKNOWN_INTENT_TYPE",
}
_INTENT_TAGS = frozenset(IntentType)


def _structural_problems(error: ValidationError) -> tuple[ValidationProblem, ...]:
    problems = []
    for detail in error.errors():
        loc = detail["loc"]
        path = _path_from_loc(loc)
        if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path += ".intent_type"
        code = _STRUCTURAL_CODES.get(detail["type"], "INVALID_VALUE")
        problems.append(ValidationProblem(path, code, detail["msg"]))
    return tuple(problems)


def _path_from_loc(loc: tuple[int | str, ...]) -> str:
    path = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(previous, int) and part in _INTENT_TAGS:
            pass  # pydantic inserts the discriminator tag after the list index; not part of the path
        else:
            path += f".{part}" if path else part
        previous = part
    return path


# --- meaning -----------------------------------------------------------------------------

# Ticket order groups (RFC 6.1): a dependency must sit in an earlier or the same group, earlier.
_GROUP_CASH_FLOW, _GROUP_SELL, _GROUP_FX, _GROUP_BUY = range(4)


def ticket_group(intent: SecurityTradeIntent | FxSpotIntent | CashFlowIntent) -> int:
    """0 CASH_FLOW, 1 SELL, 2 FX, 3 BUY: the RFC 6.1 ticket order."""
    if isinstance(intent, CashFlowIntent):
        return _GROUP_CASH_FLOW
    if isinstance(intent, FxSpotIntent):
        return _GROUP_FX
    return _GROUP_SELL if intent.side is Side.SELL else _GROUP_BUY


def _semantic_problems(artifact: ProposalArtifact) -> tuple[ValidationProblem, ...]:
    intents = artifact.trades_and_funding.intents
    problems: list[ValidationProblem] = []
    if not intents:
        problems.append(
            ValidationProblem(_INTENTS_PATH, "NO_INTENTS", "an executable proposal has at least one intent")
        )
    first_index: dict[str, int] = {}
    for index, intent in enumerate(intents):
        if intent.intent_id in first_index:
            problems.append(
                ValidationProblem(
                    f"{_INTENTS_PATH}[{index}].intent_id",
                    "DUPLICATE_INTENT_ID",
                    f"intent_id {intent.intent_id!r} is already used by intents[{first_index[intent.intent_id]}]",
                )
            )
        else:
            first_index[intent.intent_id] = index

    for index, intent in enumerate(intents):
        problems.extend(_dependency_reference_problems(index, intent, first_index))
        problems.extend(_field_problems(index, intent))

    cyclic = _intents_on_cycles(intents, first_index)
    for index in sorted(cyclic):
        members = [intents[i].intent_id for i in sorted(cyclic[index])]
        problems.append(
            ValidationProblem(
                f"{_INTENTS_PATH}[{index}].dependencies",
                "DEPENDENCY_CYCLE",
                f"intent {intents[index].intent_id!r} is on a dependency cycle among {members}",
            )
        )
    problems.extend(_dependency_order_problems(intents, first_index, cyclic))
    if artifact.trades_and_funding.funding_claimed:
        problems.extend(_funding_problems(artifact, first_index))

    expected_hash = compute_proposal_version_hash(artifact)
    if artifact.proposal_version_hash != expected_hash:
        problems.append(
            ValidationProblem(
                "proposal_version_hash",
                "HASH_MISMATCH",
                f"content hashes to {expected_hash}, artifact carries {artifact.proposal_version_hash}",
            )
        )
    return tuple(problems)


def _dependency_reference_problems(
    index: int, intent: SecurityTradeIntent | FxSpotIntent | CashFlowIntent, first_index: Mapping[str, int]
) -> list[ValidationProblem]:
    problems = []
    listed: set[str] = set()
    for position, dependency in enumerate(intent.dependencies):
        path = f"{_INTENTS_PATH}[{index}].dependencies[{position}]"
        if dependency == intent.intent_id:
            pass  # a self-dependency is reported as a cycle
        elif dependency not in first_index:
            problems.append(ValidationProblem(path, "UNKNOWN_DEPENDENCY", f"no intent has intent_id {dependency!r}"))
        elif dependency in listed:
            problems.append(ValidationProblem(path, "DUPLICATE_DEPENDENCY", f"{dependency!r} is listed twice"))
        listed.add(dependency)
    return problems


def _field_problems(
    index: int, intent: SecurityTradeIntent | FxSpotIntent | CashFlowIntent
) -> list[ValidationProblem]:
    path = f"{_INTENTS_PATH}[{index}]"
    problems = []

    def positive(field: str, value: Decimal, code: str) -> None:
        if value <= 0:
            problems.append(ValidationProblem(f"{path}.{field}", code, f"{field} must be > 0, got {value}"))

    if isinstance(intent, SecurityTradeIntent):
        positive("quantity", intent.quantity, "NON_POSITIVE_QUANTITY")
        positive("indicative_price", intent.indicative_price, "NON_POSITIVE_PRICE")
    elif isinstance(intent, FxSpotIntent):
        positive("buy_amount", intent.buy_amount, "NON_POSITIVE_AMOUNT")
        positive("sell_amount_estimated", intent.sell_amount_estimated, "NON_POSITIVE_AMOUNT")
        if intent.buy_currency == intent.sell_currency:
            problems.append(
                ValidationProblem(
                    f"{path}.sell_currency", "FX_SAME_CURRENCY", f"buys and sells {intent.buy_currency}"
                )
            )
        match = _PAIR.fullmatch(intent.pair)
        if match is None or {match.group(1), match.group(2)} != {intent.buy_currency, intent.sell_currency}:
            problems.append(
                ValidationProblem(
                    f"{path}.pair",
                    "FX_PAIR_MISMATCH",
                    f"pair {intent.pair!r} does not match buy {intent.buy_currency} / sell {intent.sell_currency}",
                )
            )
    elif intent.amount == 0:
        problems.append(ValidationProblem(f"{path}.amount", "ZERO_AMOUNT", "a cash flow must move money"))
    return problems


def _intents_on_cycles(
    intents: Sequence[SecurityTradeIntent | FxSpotIntent | CashFlowIntent], first_index: Mapping[str, int]
) -> dict[int, frozenset[int]]:
    """Index of every intent on a cycle -> the members of its cycle (Tarjan's SCC, iterative)."""
    edges = {
        index: [first_index[d] for d in intent.dependencies if d in first_index]
        for index, intent in enumerate(intents)
        if first_index.get(intent.intent_id) == index
    }
    order: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    result: dict[int, frozenset[int]] = {}
    for root in edges:
        if root in order:
            continue
        work = [(root, iter(edges[root]))]
        order[root] = low[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in order:
                    order[child] = low[child] = len(order)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], order[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == order[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                members = frozenset(component)
                if len(members) > 1 or node in edges[node]:
                    for member in members:
                        result[member] = members
    return result


def _dependency_order_problems(
    intents: Sequence[SecurityTradeIntent | FxSpotIntent | CashFlowIntent],
    first_index: Mapping[str, int],
    cyclic: Mapping[int, frozenset[int]],
) -> list[ValidationProblem]:
    # Tickets are ordered by (group, artifact position); that order must respect dependencies.
    problems = []
    for index, intent in enumerate(intents):
        if index in cyclic:
            continue
        position = (ticket_group(intent), index)
        for slot, dependency in enumerate(intent.dependencies):
            target = first_index.get(dependency)
            if target is None or target in cyclic or target == index:
                continue
            if (ticket_group(intents[target]), target) > position:
                problems.append(
                    ValidationProblem(
                        f"{_INTENTS_PATH}[{index}].dependencies[{slot}]",
                        "DEPENDENCY_ORDER",
                        f"{intent.intent_id!r} depends on {dependency!r}, which the RFC 6.1 order "
                        "(CASH_FLOW, SELL, FX, BUY; artifact order within a group) places after it",
                    )
                )
    return problems


def _funding_problems(artifact: ProposalArtifact, first_index: Mapping[str, int]) -> list[ValidationProblem]:
    intents = artifact.trades_and_funding.intents
    problems = []
    for index, intent in enumerate(intents):
        if not isinstance(intent, SecurityTradeIntent) or intent.side is not Side.BUY:
            continue
        if intent.currency == artifact.base_currency:
            continue
        funded = any(
            isinstance(funder := intents[first_index[d]], FxSpotIntent) and funder.buy_currency == intent.currency
            for d in intent.dependencies
            if d in first_index
        )
        if not funded:
            problems.append(
                ValidationProblem(
                    f"{_INTENTS_PATH}[{index}].dependencies",
                    "UNFUNDED_FOREIGN_BUY",
                    f"BUY of {intent.instrument_id} in {intent.currency} (base {artifact.base_currency}) "
                    f"depends on no FX intent buying {intent.currency}, but funding_claimed is true",
                )
            )
    return problems

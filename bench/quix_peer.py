"""The peer: the same fold written with quixstreams (exactly-once, RocksDB state). Bench only.

Per order event: decode the OrderEvent (Avro, `wire.serde`), read the execution from
quixstreams' RocksDB state (the processor's own stored-execution encoders as the state
serializer, so the stored bytes are the processor's), apply the domain's `apply_order_event`,
store the new execution and produce the ExecutionStateChange (the processor's encoder, with
the lifecycle log spliced in pre-encoded) when the log grew. RocksDB without fsync, like the
processor's store (both recover from their changelog). Executions that are not in the peer's state yet start from their created state, read
from a seed file (JSON lines: execution_id -> primitive) written by the bench: the peer has no
create path.

    python -m bench.quix_peer BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC GROUP STATE_DIR SEED_FILE
"""

from __future__ import annotations

import logging
import sys

from quixstreams import Application
from quixstreams.state.rocksdb import RocksDBOptions

from execution_domain import apply_order_event
from processor.outputs import StateChangeEncoder
from processor.state_codecs import ExecutionCodec
from wire import records as translate
from wire import serde

_ORDER_EVENT = serde.codec("OrderEvent")


def main() -> None:
    executions, state_changes = ExecutionCodec(), StateChangeEncoder()
    bootstrap, input_topic, output_topic, group, state_dir, seed_file = sys.argv[1:7]
    seed: dict[str, bytes] = {}
    with open(seed_file, "rb") as f:
        for line in f:
            eid, _, raw = line.rstrip(b"\n").partition(b"\t")
            seed[eid.decode()] = raw

    app = Application(
        broker_address=bootstrap, consumer_group=group, auto_offset_reset="earliest",
        commit_interval=0.1, processing_guarantee="exactly-once", state_dir=state_dir,
        loglevel="WARNING", producer_extra_config={"linger.ms": 5, "compression.type": "lz4"},
        rocksdb_options=RocksDBOptions(dumps=executions.encode, loads=executions.decode, use_fsync=False),
    )
    source = app.topic(input_topic, value_deserializer="bytes", key_deserializer="bytes")
    sink = app.topic(output_topic, value_serializer="bytes", key_serializer="bytes")

    def fold(value: bytes, state) -> bytes | None:
        record = _ORDER_EVENT.decode(value, topic=input_topic, partition=0, offset=0)
        event = translate.order_event_from_record(record)
        execution = state.get(b"x")
        if execution is None:
            execution = executions.decode(seed[event.execution_id])
        outcome = apply_order_event(execution, event)
        if outcome.entry is None:
            return None
        updated = outcome.execution
        state.set(b"x", updated)
        seq = outcome.entry.seq
        return state_changes.encode_spliced(translate.state_change_record(
            change_id=f"{updated.execution_id}/{seq}", sequence=seq, occurred_at=event.occurred_at,
            correlation_id=updated.definition.origin.correlation_id, cause_kind="ORDER_EVENT",
            cause_id=event.event_id, outcomes=outcome, with_events=False,
        ), updated)

    sdf = app.dataframe(source)
    sdf = sdf.apply(fold, stateful=True).filter(lambda v: v is not None)
    sdf.to_topic(sink)
    logging.getLogger("quixstreams").setLevel(logging.WARNING)
    app.run()


if __name__ == "__main__":
    main()

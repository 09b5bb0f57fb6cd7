"""The peer: the processor's order-event fold written with quixstreams (exactly-once, RocksDB state). Bench only.

The fold is `bench.peer_fold.PeerFold` (what `ExecutionsProcessor.on_order_event` does, the
processor's own codecs and output encoders); this module gives it quixstreams' per-key state
(bytes in, bytes out: `State.get_bytes` / `set_bytes`) and routes the records it returns: the
ExecutionStateChange records to OUTPUT_TOPIC, ticket instructions and version releases to
SIDE_TOPIC, each with the processor's key and headers. RocksDB without fsync, like the processor's
store (both recover from their changelog). Executions start from the seed file the bench writes
from the processor's store (`execution_id TAB definition TAB head` lines).

    python -m bench.quix_peer BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC SIDE_TOPIC GROUP STATE_DIR SEED_FILE
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from quixstreams import Application
from quixstreams.models.serializers import SerializationContext, Serializer
from quixstreams.state.rocksdb import RocksDBOptions

from bench.peer_fold import PeerFold, read_seed
from processor.runtime.journal import OutputRecord
from wire import formats
from wire.topics import TopicNames


class _RecordValue(Serializer):
    """The value bytes of a record the fold produced (already encoded by the processor's encoders)."""

    def __call__(self, value: OutputRecord, ctx: SerializationContext) -> bytes:
        return value.value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quix_peer", description=__doc__.split("\n\n")[0])
    for name in ("bootstrap", "input", "output", "side", "group", "state_dir", "seed_file"):
        parser.add_argument(name)
    args = parser.parse_args(argv)
    with open(args.seed_file, "rb") as f:
        seed = read_seed(f)
    topics = dataclasses.replace(TopicNames.defaults(args.group, {}), execution_state_changes=args.output,
                                 trade_tickets=args.side, admission_requests=args.side)
    fold = PeerFold(topics, seed, formats.from_environment().topic_codecs(topics))

    app = Application(
        broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
        commit_interval=0.1, processing_guarantee="exactly-once", state_dir=args.state_dir,
        loglevel="WARNING", producer_extra_config={"linger.ms": 5, "compression.type": "lz4"},
        rocksdb_options=RocksDBOptions(use_fsync=False),  # values go in and out as bytes (get_bytes/set_bytes)
    )
    source = app.topic(args.input, value_deserializer="bytes", key_deserializer="bytes")
    sinks = {name: app.topic(name, value_serializer=_RecordValue(), key_serializer="bytes")
             for name in {args.output, args.side}}

    def on_order_event(value: bytes, state: Any) -> list[OutputRecord]:
        return fold.on_order_event(value, state)

    sdf = app.dataframe(source)
    sdf = sdf.apply(on_order_event, stateful=True, expand=True)
    sdf = sdf.set_headers(lambda record, key, timestamp, headers: list(record.headers or ()))
    sdf.to_topic(lambda record, key, timestamp, headers: sinks[record.topic], key=lambda record: record.key)
    logging.getLogger("quixstreams").setLevel(logging.WARNING)
    app.run()


if __name__ == "__main__":
    main()

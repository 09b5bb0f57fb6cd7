"""Per-record cost of the other decode paths: `.venv/bin/python -m bench.wire_formats`.

A previous schema version resolved into the current one (the synthetic next version of
testkit.schema_evolution reading current records), the Confluent framing through wire.formats, and
confluent-kafka's own AvroSerializer/AvroDeserializer on the same records (in-process mock://
registry, so no network time). A micro-benchmark, not a test; numbers vary with the machine.
"""

from __future__ import annotations

import json
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from testkit.schema_evolution import evolved_schema_dir
from wire import formats, serde
from wire.examples import SAMPLES

WHERE: dict[str, Any] = {"topic": "t", "partition": 0, "offset": 0}


def per_record_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        evolved = serde.Codecs(evolved_schema_dir(Path(scratch) / "next"))
    client = SchemaRegistryClient.new_client({"url": "mock://bench"})
    wire_formats = formats.WireFormats(formats.RegistrySettings("mock://bench"), client=client)
    print(f"{'record':22} {'current':>9} {'previous':>9} {'confluent':>10} {'AvroDeser':>10} "
          f"{'encode cf':>10} {'AvroSer':>9}  (decode/encode, us per record)")
    for name in ("OrderEvent", "TicketInstruction", "ExecutionStateChange"):
        print(measure(name, evolved, wire_formats, client))


def measure(name: str, evolved: serde.Codecs, wire_formats: formats.WireFormats, client: SchemaRegistryClient) -> str:
    record = next(r for schema, _, r in SAMPLES if schema == name)
    current = serde.codec(name)
    data = current.encode(record)
    confluent = wire_formats.value_codec(name, f"bench-{name}")
    framed = confluent.encode(record)
    context = SerializationContext(f"bench-{name}", MessageField.VALUE)
    deserializer = AvroDeserializer(client)
    serializer = AvroSerializer(client, json.dumps(current.schema.schema))
    previous = evolved.codec(name)
    number = 20_000 if len(data) < 300 else 2_000
    return (f"{name:22} "
            f"{per_record_us(lambda: current.decode(data, **WHERE), number):9.1f} "
            f"{per_record_us(lambda: previous.decode(data, **WHERE), number):9.1f} "
            f"{per_record_us(lambda: confluent.decode(framed, **WHERE), number):10.1f} "
            f"{per_record_us(lambda: deserializer(framed, context), number // 4):10.1f} "
            f"{per_record_us(lambda: confluent.encode(record), number):10.1f} "
            f"{per_record_us(lambda: serializer(record, context), number // 4):9.1f}")

if __name__ == "__main__":
    main()

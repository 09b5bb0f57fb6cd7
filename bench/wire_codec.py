"""Rough per-record cost of the wire codecs: `.venv/bin/python bench/wire_codec.py`.

Numbers vary with the machine; this is a micro-benchmark, not a test.
"""

from __future__ import annotations

import functools
import timeit
from collections.abc import Callable

from wire import serde
from wire.examples import SAMPLES


def per_record_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    seen: set[str] = set()
    for name, label, record in SAMPLES:
        if name in seen:
            continue
        seen.add(name)
        codec = serde.codec(name)
        data = codec.encode(record)
        number = 20_000 if len(data) < 300 else 2_000
        enc = per_record_us(functools.partial(codec.encode, record), number)
        dec = per_record_us(functools.partial(codec.decode, data, topic="t", partition=0, offset=0), number)
        print(f"{name:22} {label:28} {len(data):5d} B  encode {enc:6.1f} us  decode {dec:6.1f} us")


if __name__ == "__main__":
    main()

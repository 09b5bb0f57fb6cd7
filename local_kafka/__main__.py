"""`python -m local_kafka assemble|run`: fetch the broker, or run one in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from local_kafka.assemble import assemble
from local_kafka.broker import LocalKafkaBroker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_kafka", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("assemble", help="download the broker's jars from Maven Central (once)")
    commands.add_parser("run", help="run a single-node broker until Ctrl-C or SIGTERM")
    args = parser.parse_args(argv)

    if args.command == "assemble":
        distribution = assemble(quiet=False)
        print(f"Apache Kafka {distribution.kafka_version}: {distribution.lib_dir}")
        return 0

    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())
    with LocalKafkaBroker() as broker:
        print(
            f"Apache Kafka {broker.kafka_version} ready at {broker.bootstrap_servers} "
            f"(pid {broker.pid}, logs {broker.log_path}); Ctrl-C stops it",
            flush=True,
        )
        stop_requested.wait()
    print("broker stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m local_registry assemble|run`: build the schema registry, or run one in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from local_registry.assemble import assemble
from local_registry.registry import LocalSchemaRegistry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_registry", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("assemble", help="build Apicurio Registry from Maven Central (once)")
    commands.add_parser("run", help="run the registry until Ctrl-C or SIGTERM")
    args = parser.parse_args(argv)

    if args.command == "assemble":
        distribution = assemble(quiet=False)
        print(f"Apicurio Registry {distribution.version}: {distribution.runner_jar}")
        return 0

    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())
    with LocalSchemaRegistry() as registry:
        print(f"Apicurio Registry {registry.version} ready at {registry.url} (pid {registry.pid}); "
              f"SCHEMA_REGISTRY_URL={registry.url}; Ctrl-C stops it", flush=True)
        stop_requested.wait()
    print("registry stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

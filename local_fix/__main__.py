"""`python -m local_fix assemble|run`: fetch QuickFIX/J's Executor, or run one in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from local_fix.assemble import assemble
from local_fix.executor import ExecutorSettings, LocalFixExecutor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_fix", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("assemble", help="download the Executor's jars from Maven Central (once)")
    run = commands.add_parser("run", help="run the Executor until Ctrl-C or SIGTERM")
    run.add_argument("--sender-comp-id", default="EXEC", help="the Executor's CompID")
    run.add_argument("--target-comp-id", default="ADAPTER", help="the FIX adapter's SenderCompID")
    run.add_argument("--valid-order-types", default="1,2", help="FIX OrdType values it accepts (1 market, 2 limit)")
    args = parser.parse_args(argv)

    if args.command == "assemble":
        distribution = assemble(quiet=False)
        print(f"QuickFIX/J Executor {distribution.quickfixj_version}: {distribution.lib_dir}")
        return 0

    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())
    settings = ExecutorSettings(args.sender_comp_id, args.target_comp_id, valid_order_types=args.valid_order_types)
    with LocalFixExecutor(settings) as executor:
        print(
            f"QuickFIX/J Executor {executor.quickfixj_version} listening at {executor.host}:{executor.port} "
            f"(FIX.4.4 {settings.sender_comp_id}<-{settings.target_comp_id}, pid {executor.pid}, "
            f"output {executor.output_path}); Ctrl-C stops it",
            flush=True,
        )
        stop_requested.wait()
    print("executor stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

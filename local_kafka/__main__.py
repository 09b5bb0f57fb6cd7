"""`python -m local_kafka`: a real single-node Apache Kafka broker on this machine.

  assemble   download the broker's jars from Maven Central (once; later calls reuse them)
  run        run a broker in the foreground until Ctrl-C or SIGTERM
  start      start a broker in the background on a data directory, print its address, return
  stop       stop the broker that `start` left running on a data directory (data kept)

With `--data-dir` the broker keeps its data there: a later `run` or `start` on the same
directory comes back on the same port with its topics, records and consumer offsets.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from local_kafka.assemble import assemble
from local_kafka.broker import BrokerStartError, LocalKafkaBroker, pid_alive

# In a data directory: the supervising `run` process and the address, while it serves.
RUNNING_FILE = "running.json"
DEFAULT_DATA_DIR = ".local-kafka"


def export_line(bootstrap_servers: str) -> str:
    return f"export KAFKA_BOOTSTRAP_SERVERS={bootstrap_servers}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_kafka", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("assemble", help="download the broker's jars from Maven Central (once)")
    run = commands.add_parser("run", help="run a single-node broker in the foreground until Ctrl-C or SIGTERM",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    start = commands.add_parser("start", help="start a broker in the background and print its address",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    stop = commands.add_parser("stop", help="stop the broker `start` left running (SIGTERM; data kept)",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for sub in (run, start):
        sub.add_argument("--port", type=int, default=None,
                         help="the broker's port on 127.0.0.1 (default: the data directory's last port, else a free one)")
        sub.add_argument("--print-env", action="store_true",
                         help="print only `export KAFKA_BOOTSTRAP_SERVERS=...` on stdout, for eval")
    run.add_argument("--data-dir", type=Path, default=None,
                     help="keep data there across restarts (default: a temporary directory, removed on stop)")
    for sub in (start, stop):
        sub.add_argument("--data-dir", type=Path, default=Path(DEFAULT_DATA_DIR),
                         help="the broker's data directory (its data is kept across stop and start)")
    start.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the broker to be ready")
    stop.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the broker to stop")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "assemble":
        distribution = assemble(quiet=False)
        print(f"Apache Kafka {distribution.kafka_version}: {distribution.lib_dir}")
        return 0
    if args.command == "run":
        return run(args.port, args.data_dir, print_env=args.print_env)
    if args.command == "start":
        return start(args.port, args.data_dir, print_env=args.print_env, timeout_s=args.timeout)
    return stop(args.data_dir, timeout_s=args.timeout)


def run(port: int | None, data_dir: Path | None, *, print_env: bool) -> int:
    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())
    broker = LocalKafkaBroker(data_dir=data_dir, port=port)
    try:
        broker.start()
    except BrokerStartError as error:
        print(f"local_kafka: the broker did not start: {error}", file=sys.stderr)
        return 1
    running = broker.work_dir / RUNNING_FILE if data_dir is not None and broker.work_dir else None
    try:
        message = (f"Apache Kafka {broker.kafka_version} ready at {broker.bootstrap_servers} "
                   f"(pid {broker.pid}, data {broker.work_dir}, logs {broker.log_path}); Ctrl-C stops it")
        if print_env:
            print(export_line(broker.bootstrap_servers), flush=True)
            print(message, file=sys.stderr, flush=True)
        else:
            print(message, flush=True)
        if running is not None:
            running.write_text(json.dumps({"pid": os.getpid(), "broker_pid": broker.pid,
                                           "bootstrap_servers": broker.bootstrap_servers}) + "\n")
        stop_requested.wait()
    finally:
        broker.stop()
        if running is not None:
            running.unlink(missing_ok=True)
    print("broker stopped" + (f"; data kept in {data_dir}" if data_dir is not None else ""),
          file=sys.stderr if print_env else sys.stdout, flush=True)
    return 0


def _running(data_dir: Path) -> dict[str, object] | None:
    """What `run` recorded in the directory, if that process is still alive."""
    try:
        info = json.loads((data_dir / RUNNING_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    pid = info.get("pid")
    return info if isinstance(pid, int) and pid_alive(pid) else None


def start(port: int | None, data_dir: Path, *, print_env: bool, timeout_s: float) -> int:
    data_dir = data_dir.resolve()
    if (info := _running(data_dir)) is not None:
        print(f"local_kafka: a broker already runs on {data_dir} at {info['bootstrap_servers']} (pid {info['pid']});"
              f" stop it with: python -m local_kafka stop --data-dir {data_dir}", file=sys.stderr)
        return 1
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / RUNNING_FILE).unlink(missing_ok=True)
    command = [sys.executable, "-m", "local_kafka", "run", "--data-dir", str(data_dir),
               *(["--port", str(port)] if port else [])]
    log_path = data_dir / "run.log"
    with open(log_path, "ab") as log:
        # Its own session: it outlives this command and a Ctrl-C in this terminal.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while (info := _running(data_dir)) is None or info["pid"] != process.pid:
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.terminate()
                process.wait(60)
            tail = log_path.read_text(errors="replace")[-3000:]
            print(f"local_kafka: the broker did not start (log {log_path}):\n{tail}", file=sys.stderr)
            return 1
        time.sleep(0.2)
    bootstrap = str(info["bootstrap_servers"])
    if print_env:
        print(export_line(bootstrap))
    else:
        print(f"broker running at {bootstrap} (pid {process.pid}, data {data_dir}); "
              f"stop it with: python -m local_kafka stop --data-dir {data_dir}")
    return 0


def stop(data_dir: Path, *, timeout_s: float) -> int:
    info = _running(data_dir)
    if info is None:
        print(f"no broker running on {data_dir}")
        return 0
    pid = int(str(info["pid"]))
    try:  # the recorded PID must still be the `run` process `start` launched, not a reused PID
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        cmdline = []
    if b"local_kafka" not in cmdline or str(data_dir.resolve()).encode() not in cmdline:
        print(f"local_kafka: pid {pid} in {data_dir / RUNNING_FILE} is not this directory's broker; not stopping it",
              file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            print(f"local_kafka: the broker (pid {pid}) did not stop within {timeout_s:.0f}s", file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"broker stopped (pid {pid}); data kept in {data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

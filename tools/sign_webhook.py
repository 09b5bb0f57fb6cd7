"""`python -m tools.sign_webhook FILE`: the X-Signature header value for a webhook body.

Signs the raw bytes of FILE (`-` for stdin) as the gateway verifies them:
`t=<unix seconds>,v1=hex(HMAC-SHA256(secret, "<t>." + body))` (docs/gateway.md). The secret
comes from WEBHOOK_SECRET, else the first of GATEWAY_WEBHOOK_SECRETS (never a flag: a command
line is visible to every local user). Use it with curl's --data-binary @FILE, which sends the
bytes unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway.webhook import signature_header


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.sign_webhook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", metavar="FILE", help="the exact body to send; - reads stdin")
    parser.add_argument("--timestamp", type=int, default=None, help="unix seconds to sign with (default: now)")
    args = parser.parse_args(argv)
    secret = os.environ.get("WEBHOOK_SECRET") or os.environ.get("GATEWAY_WEBHOOK_SECRETS", "").split(",")[0].strip()
    if not secret:
        print("sign_webhook: set WEBHOOK_SECRET (or GATEWAY_WEBHOOK_SECRETS) to the gateway's webhook secret",
              file=sys.stderr)
        return 2
    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as error:
        print(f"sign_webhook: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 1
    print(signature_header(secret, body, args.timestamp))
    return 0


if __name__ == "__main__":
    sys.exit(main())

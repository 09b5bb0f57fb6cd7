"""Validate an AsyncAPI document with the official AsyncAPI parser (`@asyncapi/parser` from the
npm registry, with `@asyncapi/avro-schema-parser` so Avro payload schemas are parsed too).

The Node packages pinned in `testkit/asyncapi/package.json` are installed once with npm into
`~/.cache/execution-integration/asyncapi-validator-<hash>/` (like the broker's jars); later
calls reuse them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_kafka.assemble import cache_root

SOURCE = Path(__file__).with_name("asyncapi")


@dataclass(frozen=True)
class Diagnostic:
    severity: int  # 0 error, 1 warning, 2 information, 3 hint (Spectral's scale)
    code: str
    message: str
    path: tuple[str, ...]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.code} at {'/'.join(self.path) or '/'}: {self.message}"


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def install() -> Path:
    """The directory with the validator and its node_modules, installing on first use."""
    manifest = (SOURCE / "package.json").read_bytes()
    target = cache_root() / f"asyncapi-validator-{hashlib.sha256(manifest).hexdigest()[:12]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = target / ".installed"
        if not marker.exists():
            target.mkdir(exist_ok=True)
            shutil.copy(SOURCE / "package.json", target / "package.json")
            completed = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"],
                                       cwd=target, capture_output=True, text=True, timeout=600)
            if completed.returncode != 0:
                raise RuntimeError(f"npm install failed:\n{completed.stdout[-2000:]}{completed.stderr[-2000:]}")
            marker.touch()
        shutil.copy(SOURCE / "validate.mjs", target / "validate.mjs")
    return target


def validate(document: dict[str, Any]) -> list[Diagnostic]:
    """Every diagnostic the official parser reports for the document."""
    directory = install()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(document, handle)
    try:
        completed = subprocess.run(["node", str(directory / "validate.mjs"), handle.name], capture_output=True,
                                   text=True, timeout=120)
    finally:
        Path(handle.name).unlink()
    if completed.returncode != 0:
        raise RuntimeError(f"the AsyncAPI parser failed: {completed.stderr[-3000:]}")
    return [Diagnostic(d["severity"], d["code"], d["message"], tuple(str(p) for p in d["path"]))
            for d in json.loads(completed.stdout)]

"""Assemble the Apache Kafka broker's runtime classpath from Maven Central.

The jars are resolved by Maven from `pom.xml` beside this file and copied once into a
per-version cache directory; later calls reuse it. A completed assembly is marked by a
`classpath.txt` file written last, so an interrupted download is simply redone.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

POM_PATH = Path(__file__).with_name("pom.xml")
LOG4J_CONFIG_PATH = Path(__file__).with_name("log4j2.properties")


class AssemblyError(RuntimeError):
    """Maven could not produce the broker's classpath."""


@dataclass(frozen=True, slots=True)
class BrokerDistribution:
    kafka_version: str
    lib_dir: Path

    @property
    def classpath(self) -> str:
        return os.pathsep.join(str(jar) for jar in sorted(self.lib_dir.glob("*.jar")))


def kafka_version() -> str:
    """The broker version pinned in pom.xml (the single place it is set)."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM_PATH.read_text())
    if match is None:
        raise AssemblyError(f"no <kafka.version> in {POM_PATH}")
    return match.group(1)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "execution-integration"


def assemble(*, quiet: bool = True) -> BrokerDistribution:
    """Return the broker distribution, downloading it with Maven on first use."""
    version = kafka_version()
    lib_dir = assemble_classpath(POM_PATH, f"kafka-{version}", f"kafka_2.13-{version}", quiet=quiet)
    return BrokerDistribution(kafka_version=version, lib_dir=lib_dir)


def assemble_classpath(pom_path: Path, name: str, required_jar_prefix: str, *, quiet: bool = True) -> Path:
    """Resolve `pom_path`'s runtime classpath into `<cache>/<name>/libs` once; return that directory.

    Shared by every Java server the project runs (the broker, the FIX counterparty).
    """
    target = cache_root() / name
    marker = target / "classpath.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f"{name}.lock"
    with open(lock_path, "w") as lock:
        # Tests, the demo and a developer's shell may assemble at the same moment.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            _copy_dependencies(pom_path, target / "libs", quiet=quiet)
            jars = sorted(p.name for p in (target / "libs").glob("*.jar"))
            if not any(jar.startswith(required_jar_prefix) for jar in jars):
                raise AssemblyError(f"Maven finished but {required_jar_prefix}*.jar is missing")
            marker.write_text("\n".join(jars) + "\n")
    return target / "libs"


def _copy_dependencies(pom_path: Path, lib_dir: Path, *, quiet: bool) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise AssemblyError(f"Maven (mvn) is not on PATH; it is needed once to fetch {pom_path.parent.name}'s jars")
    if lib_dir.exists():
        shutil.rmtree(lib_dir)
    command = [
        mvn,
        "-B",
        *(["-q"] if quiet else []),
        "-f",
        str(pom_path),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={lib_dir}",
    ]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        tail = (completed.stdout + completed.stderr)[-4000:]
        raise AssemblyError(f"mvn failed with exit code {completed.returncode}:\n{tail}")

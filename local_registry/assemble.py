"""Build the Apicurio Registry runner from Maven Central, once, into a per-version cache directory.

`mvn package` runs on a copy of `pom.xml` (with `maven-settings.xml`, which mirrors every
repository to Maven Central) in a scratch directory; the runner jar and its `lib/` are then moved
into `~/.cache/execution-integration/apicurio-registry-<version>/`. A `ready.txt` written last
marks a complete build, so an interrupted one is simply redone. Cold: about 1.5 minutes and 260 MB
of Maven downloads; afterwards nothing.
"""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from local_kafka.assemble import cache_root

POM_PATH = Path(__file__).with_name("pom.xml")
SETTINGS_PATH = Path(__file__).with_name("maven-settings.xml")


class AssemblyError(RuntimeError):
    """Maven could not build the registry."""


@dataclass(frozen=True, slots=True)
class RegistryDistribution:
    version: str
    runner_jar: Path


def registry_version() -> str:
    """The Apicurio version pinned in pom.xml (the single place it is set), e.g. 2.4.2."""
    match = re.search(r"<apicurio\.version>([^<]+)</apicurio\.version>", POM_PATH.read_text())
    if match is None:
        raise AssemblyError(f"no <apicurio.version> in {POM_PATH}")
    return match.group(1).removesuffix(".Final")


def assemble(*, quiet: bool = True) -> RegistryDistribution:
    """Return the registry distribution, building it with Maven on first use."""
    version = registry_version()
    target = cache_root() / f"apicurio-registry-{version}"
    marker = target / "ready.txt"
    runner = target / f"apicurio-registry-mem-{version}-runner.jar"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"apicurio-registry-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # tests, the demo and bin/setup may build at the same moment
        if not marker.exists() or not runner.exists():
            _build(target, version, quiet=quiet)
            marker.write_text(f"{runner.name}\n")
    return RegistryDistribution(version=version, runner_jar=runner)


def _build(target: Path, version: str, *, quiet: bool) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise AssemblyError("Maven (mvn) is not on PATH; it is needed once to build the schema registry")
    with tempfile.TemporaryDirectory(prefix="local-registry-build-") as scratch:
        work = Path(scratch)
        shutil.copy(POM_PATH, work / "pom.xml")
        shutil.copy(SETTINGS_PATH, work / "maven-settings.xml")
        command = [mvn, "-B", *(["-q"] if quiet else []), "-s", "maven-settings.xml", "-DskipTests", "package"]
        completed = subprocess.run(command, cwd=work, capture_output=True, text=True)
        if completed.returncode != 0:
            tail = (completed.stdout + completed.stderr)[-4000:]
            raise AssemblyError(f"mvn failed with exit code {completed.returncode}:\n{tail}")
        built = work / "target" / f"apicurio-registry-mem-{version}-runner.jar"
        if not built.exists():
            raise AssemblyError(f"Maven finished but {built.name} is missing")
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.move(str(built), target / built.name)
        shutil.move(str(work / "target" / "lib"), target / "lib")

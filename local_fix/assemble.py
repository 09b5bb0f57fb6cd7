"""Assemble QuickFIX/J's example Executor's runtime classpath from Maven Central (once, cached)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from local_kafka.assemble import AssemblyError, assemble_classpath

POM_PATH = Path(__file__).with_name("pom.xml")
MAIN_CLASS = "quickfix.examples.executor.Executor"


@dataclass(frozen=True, slots=True)
class ExecutorDistribution:
    quickfixj_version: str
    lib_dir: Path

    @property
    def classpath(self) -> str:
        return os.pathsep.join(str(jar) for jar in sorted(self.lib_dir.glob("*.jar")))


def quickfixj_version() -> str:
    """The QuickFIX/J version pinned in pom.xml (the single place it is set)."""
    match = re.search(r"<quickfixj\.version>([^<]+)</quickfixj\.version>", POM_PATH.read_text())
    if match is None:
        raise AssemblyError(f"no <quickfixj.version> in {POM_PATH}")
    return match.group(1)


def assemble(*, quiet: bool = True) -> ExecutorDistribution:
    """Return the Executor's distribution, downloading it with Maven on first use."""
    version = quickfixj_version()
    lib_dir = assemble_classpath(POM_PATH, f"quickfixj-executor-{version}", f"quickfixj-examples-executor-{version}",
                                 quiet=quiet)
    return ExecutorDistribution(quickfixj_version=version, lib_dir=lib_dir)

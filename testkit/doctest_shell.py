"""Run the shell blocks of the project's Markdown documents as a reader would paste them.

A fenced ```bash block is runnable when the line before it is an HTML comment

    <!-- runnable OPTION... -->

and is otherwise left alone only when marked `<!-- not-runnable: why -->` (so no block is
forgotten: `unmarked_blocks` lists the rest). Options, each `name=value` (quote values with
spaces in double quotes):

- `expect=REGEX` (repeatable): the block's stdout + stderr must match (`^`, `$` per line);
- `background`: start it and go on (a server); `ready=REGEX` waits for its output to match,
  `ready-url=URL` for the URL to answer 200; `expect=` is then checked when the document ends;
- `unless-env=NAME`: skip it when the runner supplies NAME (e.g. a broker it already has);
- `retry=SECONDS`: run it again until it passes or the time is up (e.g. a create that may
  precede the processor's reading of the proposal by a moment);
- `status=N`: the exit status it must end with (default 0).

Foreground blocks run one after another in `bash -euo pipefail` with every variable exported
(`set -a`), and the variables a block sets are there for the next block, as in one shell.
They run in a scratch directory that links every top-level entry of the repository, so
relative paths work and files a block writes stay out of the checkout. Background blocks run
in their own process group and are stopped by it (SIGTERM, then SIGKILL) at the end.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w+)?\s*$")
MARK = re.compile(r"^<!--\s*(runnable|not-runnable)\b(.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    code: str
    runnable: bool
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str, default: str | None = None) -> str | None:
        return next((value for key, value in self.options if key == name), default)

    def expects(self) -> list[str]:
        return [value for key, value in self.options if key == "expect"]

    @property
    def where(self) -> str:
        return f"{self.document.name}:{self.line}"


@dataclass(frozen=True)
class Unmarked:
    document: Path
    line: int

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"


def parse_options(text: str) -> tuple[tuple[str, str], ...]:
    options = []
    for token in shlex.split(text):
        name, _, value = token.partition("=")
        options.append((name, value))
    return tuple(options)


def shell_blocks(document: Path) -> Iterator[Block | Unmarked]:
    """Every fenced bash/sh block of a document, marked or not, in order."""
    lines = document.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        language, start = opening.group(1), index
        end = next((j for j in range(index + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        index = end + 1
        if language not in ("bash", "sh", "shell", "console"):
            continue
        mark = MARK.match(lines[start - 1].strip()) if start > 0 else None
        if mark is None:
            yield Unmarked(document, start + 1)
            continue
        yield Block(document, start + 1, "\n".join(lines[start + 1:end]) + "\n", mark.group(1) == "runnable",
                    parse_options(mark.group(2)) if mark.group(1) == "runnable" else ())


@dataclass
class Outcome:
    block: Block
    status: int | None  # None: skipped
    output: str


@dataclass
class ShellSession:
    """Runs a document's runnable blocks in order, as one reader's shell would."""

    repo: Path
    env: dict[str, str]
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="doctest-shell-")))
    background: list[tuple[Block, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for entry in self.repo.iterdir():
            if entry.name != ".git":
                (self.workdir / entry.name).symlink_to(entry)
        self._state = self.workdir / ".doctest-env"
        self._state.write_text("")

    def run(self, block: Block) -> Outcome:
        unless = block.option("unless-env")
        if unless and self.env.get(unless):
            return Outcome(block, None, f"skipped: {unless} is supplied")
        if block.option("background") is not None:
            return self._start_background(block)
        deadline = time.monotonic() + float(block.option("retry", "0") or 0)
        while True:
            outcome = self._run_foreground(block)
            if self.failure(outcome) is None or time.monotonic() > deadline:
                return outcome
            time.sleep(1)

    def _script(self, block: Block) -> str:
        return (f"set -a\nsource {shlex.quote(str(self._state))}\nset -euo pipefail\n{block.code}"
                f"\nexport -p > {shlex.quote(str(self._state))}\n")

    def _run_foreground(self, block: Block) -> Outcome:
        completed = subprocess.run(["bash", "-c", self._script(block)], cwd=self.workdir, env=self.env,
                                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        return Outcome(block, completed.returncode, completed.stdout + completed.stderr)

    def _start_background(self, block: Block) -> Outcome:
        log_path = self.workdir / f".background-{block.line}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(["bash", "-c", f"set -a\nsource {shlex.quote(str(self._state))}\n{block.code}"],
                                       cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.background.append((block, process, log_path))
        ready, url = block.option("ready"), block.option("ready-url")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            output = log_path.read_text(errors="replace")
            if process.poll() is not None:
                return Outcome(block, process.returncode, f"exited early:\n{output}")
            if (ready is None or re.search(ready, output, re.MULTILINE)) and (url is None or self._answers(url)):
                return Outcome(block, 0, output)
            time.sleep(0.3)
        return Outcome(block, -1, f"not ready within 60 s:\n{log_path.read_text(errors='replace')}")

    def _answers(self, url: str) -> bool:
        expanded = re.sub(r"\$\{?(\w+)\}?", lambda m: self.env.get(m.group(1), ""), url)
        try:
            with urllib.request.urlopen(expanded, timeout=2) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    @staticmethod
    def failure(outcome: Outcome) -> str | None:
        """Why the block failed, or None."""
        if outcome.status is None:
            return None
        wanted = int(outcome.block.option("status", "0") or 0)
        if outcome.block.option("background") is None and outcome.status != wanted:
            return f"exit status {outcome.status}, expected {wanted}"
        if outcome.block.option("background") is not None and outcome.status != 0:
            return "did not start"
        if outcome.block.option("background") is None:
            missing = [e for e in outcome.block.expects() if not re.search(e, outcome.output, re.MULTILINE)]
            if missing:
                return f"output does not match {missing}"
        return None

    def finish(self, timeout_s: float = 20) -> list[str]:
        """Check the background blocks' expectations (waiting up to `timeout_s`), then stop them all."""
        problems = []
        deadline = time.monotonic() + timeout_s
        for block, _process, log_path in self.background:
            while True:
                output = log_path.read_text(errors="replace")
                missing = [e for e in block.expects() if not re.search(e, output, re.MULTILINE)]
                if not missing or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            if missing:
                problems.append(f"{block.where}: background output does not match {missing}:\n{output[-3000:]}")
        self.stop()
        return problems

    def stop(self) -> None:
        for _block, process, _log in reversed(self.background):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(20)
        self.background.clear()


def run_document(document: Path, repo: Path, env: Mapping[str, str]) -> list[str]:
    """Run every runnable block of `document`; the failures (empty when every block passed)."""
    session = ShellSession(repo, dict(env))
    problems: list[str] = []
    try:
        for block in shell_blocks(document):
            if not isinstance(block, Block) or not block.runnable:
                continue
            outcome = session.run(block)
            failure = session.failure(outcome)
            if failure is not None:
                problems.append(f"{block.where}: {failure}\n--- block\n{block.code}--- output\n{outcome.output[-4000:]}")
                break  # later blocks build on this one
    finally:
        problems += session.finish(timeout_s=0 if problems else 20)
        shutil.rmtree(session.workdir, ignore_errors=True)
    return problems

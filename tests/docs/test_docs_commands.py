"""Every shell command the README and docs/ show works when pasted: the runnable blocks run in
order, as one reader's shell would, against services they start themselves, with the broker,
ports, tokens and topic names supplied through the documented variables (testkit.doctest_shell)."""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import fields
from pathlib import Path

import pytest

from local_kafka.broker import free_loopback_port
from testkit.doctest_shell import Block, Unmarked, run_document, shell_blocks
from wire.topics import TopicNames

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_environment(bootstrap: str) -> dict[str, str]:
    """What a reader would export, with values of this run's own: its broker, free ports, fresh
    secrets, and topic names no other test uses."""
    application_id = f"doctest-{uuid.uuid4().hex[:8]}"
    topics = TopicNames.defaults(application_id, {})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOPIC_", "GATEWAY_", "PROCESSOR_"))}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "PROCESSOR_APPLICATION_ID": application_id,
        "PROCESSOR_HTTP_PORT": str(free_loopback_port()),
        "GATEWAY_PORT": str(free_loopback_port()),
        "GATEWAY_API_TOKENS": secrets.token_urlsafe(24),
        "GATEWAY_WEBHOOK_SECRETS": secrets.token_urlsafe(24),
    })
    for field in fields(TopicNames):
        name = getattr(topics, field.name)
        env[f"TOPIC_{field.name.upper()}"] = name if name.startswith(application_id) else f"{application_id}.{name}"
    return env


def test_docs_every_shell_block_is_marked_runnable_or_not_runnable_with_a_reason() -> None:
    unmarked = [str(block) for document in DOCUMENTS for block in shell_blocks(document) if isinstance(block, Unmarked)]
    assert unmarked == [], "mark each block <!-- runnable ... --> or <!-- not-runnable: why -->"


def test_docs_runnable_blocks_exist_in_the_readme_and_the_gateway_doc() -> None:
    runnable = {b.document.name for d in DOCUMENTS for b in shell_blocks(d) if isinstance(b, Block) and b.runnable}
    assert {"README.md", "gateway.md"} <= runnable


@pytest.mark.integration
@pytest.mark.parametrize("document", [d for d in DOCUMENTS if any(
    isinstance(b, Block) and b.runnable for b in shell_blocks(d))], ids=lambda d: d.name)
def test_docs_commands_run_as_written_and_print_what_they_promise(kafka_bootstrap: str, document: Path) -> None:
    problems = run_document(document, ROOT, documented_environment(kafka_bootstrap))
    assert problems == [], "\n\n".join(problems)


def test_doctest_runner_reports_a_failing_command_and_a_missing_output(tmp_path: Path) -> None:
    document = tmp_path / "broken.md"
    document.write_text(
        '<!-- runnable expect="hello" -->\n```bash\necho hello\nNAME=kept\n```\n\n'
        '<!-- runnable expect="kept" -->\n```bash\necho "$NAME"\n```\n\n'
        '<!-- runnable -->\n```bash\n.venv/bin/python -m no_such_module\n```\n\n'
        '<!-- runnable -->\n```bash\necho never reached\n```\n')
    problems = run_document(document, ROOT, dict(os.environ))
    assert len(problems) == 1 and "broken.md:13: exit status 1" in problems[0], problems
    assert "No module named no_such_module" in problems[0]

    document.write_text('<!-- runnable expect="goodbye" -->\n```bash\necho hello\n```\n')
    problems = run_document(document, ROOT, dict(os.environ))
    assert len(problems) == 1 and "output does not match ['goodbye']" in problems[0]

"""The configuration tables in the docs name every setting the code reads, with its flag and
variable, and nothing the code no longer reads."""

from __future__ import annotations

import re
from pathlib import Path

from processor import config as processor_config

ROOT = Path(__file__).resolve().parents[2]


def table_rows(document: Path, heading: str) -> list[list[str]]:
    """The cells of the first table under `heading` (a `## ` heading), backticks removed."""
    text = document.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows[2:]]


def test_design_configuration_table_lists_every_processor_setting_with_its_flag_and_variable() -> None:
    rows = {row[0]: row[1] for row in table_rows(ROOT / "docs" / "design.md", "Configuration")}
    expected = {processor_config._FLAGS[name][0]: processor_config.env_name(name)
                for name in processor_config.ProcessorSettings.model_fields}

    documented = {flag: variable for flag, variable in rows.items() if re.fullmatch(r"--[a-z-]+", flag)}
    assert documented == expected

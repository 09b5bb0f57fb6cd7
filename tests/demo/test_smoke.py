"""The smoke run publishes one record of every contract and reads each back intact."""

from __future__ import annotations

import pytest

from demo.smoke import run
from wire.topics import TOPICS

pytestmark = pytest.mark.integration


def test_smoke_run_round_trips_every_contract_through_the_broker(kafka_bootstrap: str, capsys) -> None:
    assert run(kafka_bootstrap) == 0
    output = capsys.readouterr().out
    assert output.count("ok  ") == len(TOPICS) and "FAIL" not in output

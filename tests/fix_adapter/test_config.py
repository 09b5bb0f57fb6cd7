"""Counterparty configuration and the Executor's generated settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from fix_adapter.config import ConfigError, parse_counterparties, parse_counterparty
from local_fix.executor import ExecutorSettings, session_config


def test_config_counterparty_parses_with_defaults() -> None:
    counterparty = parse_counterparty("name=EXEC,host=127.0.0.1,port=9880,sender=ADAPTER,target=EXEC")
    assert (counterparty.port, counterparty.session.heartbeat_s, counterparty.session.reset_on_logon) == (9880, 30, False)
    assert counterparty.ticket_types == ("SECURITY_ORDER", "FX_SPOT_ORDER")


@pytest.mark.parametrize("text, problem", [
    ("name=A,host=h,port=x,sender=S,target=T", "port must be a number"),
    ("name=A,host=h,port=1,sender=S", "lacks target"),
    ("name=A,host=h,port=1,sender=S,target=T,colour=red", "unknown key 'colour'"),
    ("name=A,host=h,port=1,sender=S,target=T,tickets=BONDS", "unknown ticket type(s) BONDS"),
])
def test_config_bad_counterparty_is_a_clear_error(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_counterparty(text)


def test_config_counterparties_come_from_the_environment_and_names_are_unique() -> None:
    one = "name=A,host=h,port=1,sender=S,target=T"
    assert [c.name for c in parse_counterparties([], {"FIX_COUNTERPARTIES": f"{one};{one.replace('A', 'B', 1)}"})] == ["A", "B"]
    with pytest.raises(ConfigError, match="unique"):
        parse_counterparties([one, one], {})
    with pytest.raises(ConfigError, match="at least one"):
        parse_counterparties([], {})


def test_config_executor_settings_bind_loopback_only(tmp_path: Path) -> None:
    text = session_config(ExecutorSettings(valid_order_types="1"), port=9999, store_dir=tmp_path)
    assert "SocketAcceptAddress=127.0.0.1" in text and "SocketAcceptPort=9999" in text
    assert "ValidOrderTypes=1\n" in text and "BeginString=FIX.4.4" in text

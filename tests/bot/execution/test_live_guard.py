"""The one live guard: an exchange executor is built only with run.mode = "live", --live and credentials.

Each refusal must come before the first request: the Binance stub on loopback must see nothing."""

from __future__ import annotations

import pytest
from stubkit import CREDS, make_stub, settings_for

from bot.config.secrets import require_live
from bot.errors import ConfigError
from bot.execution.live import open_exchange_executor


@pytest.mark.asyncio
@pytest.mark.parametrize("mode, flag, creds, message", [
    ("live", False, True, "--live was not given"),
    ("paper", True, True, "--live given but run.mode is 'paper'"),
    ("paper", False, True, "refusing to build an exchange executor: run.mode is 'paper'"),
    ("live", True, False, "no credentials are set"),
])
async def test_the_exchange_executor_is_not_built_without_mode_flag_and_credentials(
        mode: str, flag: bool, creds: bool, message: str) -> None:
    async with make_stub() as stub:
        settings = settings_for(stub).with_overrides(run={"mode": mode})
        with pytest.raises(ConfigError, match=message):
            await open_exchange_executor(settings, CREDS if creds else None, None, live_flag=flag)
        assert stub.requests == []   # refused before any client was made


def test_require_live_hands_back_the_credentials_only_when_all_three_hold() -> None:
    assert require_live("live", True, CREDS) is CREDS
    with pytest.raises(ConfigError, match="real orders need run.mode = \"live\" in the config, --live"):
        require_live("paper", False, CREDS)

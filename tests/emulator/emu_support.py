"""Shared helpers of the emulator suite (imported by conftest and the tests)."""

from __future__ import annotations

from typing import Any

from tokenomy.emulator import EmulatorApp, VirtualClock

MODEL = "claude-sonnet-4-6"
# a system prompt far above Sonnet 4.6's 1,024-token minimum
LONG_SYSTEM = "You are a careful coding assistant. " + " ".join(
    f"Rule {i}: check item {i} twice and report what changed." for i in range(250)
)


def system_blocks(text: str = LONG_SYSTEM, ttl: str | None = None) -> list[dict[str, Any]]:
    cc: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        cc["ttl"] = ttl
    return [{"type": "text", "text": text, "cache_control": cc}]


class Emu:
    def __init__(self, url: str, app: EmulatorApp, clock: VirtualClock) -> None:
        self.url = url
        self.app = app
        self.clock = clock
        self.clients: list[Any] = []

    def client(self, key: str = "sk-test-1", **kw: Any) -> Any:
        """A sync SDK client, closed when the test ends (no socket is left for the GC to find)."""
        import anthropic

        kw.setdefault("max_retries", 0)
        c = anthropic.Anthropic(base_url=self.url, api_key=key, **kw)
        self.clients.append(c)
        return c

    def async_client(self, key: str = "sk-test-1", **kw: Any) -> Any:
        import anthropic

        kw.setdefault("max_retries", 0)
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=key, **kw)

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.clients.clear()

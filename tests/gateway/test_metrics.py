"""/metrics speaks the Prometheus text format and counts what went through."""

from __future__ import annotations

import anthropic
import httpx
from gw_support import Stack

MODEL = "claude-sonnet-4-6"
SYSTEM = [{"type": "text", "text": "You are careful. " * 800, "cache_control": {"type": "ephemeral"}}]


def test_metrics_and_health(gw: Stack) -> None:
    c = anthropic.Anthropic(base_url=gw.url, api_key="sk-test", max_retries=0)
    for _ in range(2):
        c.messages.create(
            model=MODEL, max_tokens=20, system=SYSTEM, messages=[{"role": "user", "content": "hi"}]
        )  # type: ignore[arg-type]
    c.close()
    assert httpx.get(gw.url + "/healthz").json() == {"status": "ok"}
    r = httpx.get(gw.url + "/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert 'tokenomy_requests_total{endpoint="/v1/messages",status="200"} 2' in text
    assert f'tokenomy_tokens_total{{model="{MODEL}",class="cache_read"}}' in text
    assert f'tokenomy_tokens_total{{model="{MODEL}",class="cache_write_5m"}}' in text
    assert f'tokenomy_cost_usd_total{{model="{MODEL}"}}' in text
    ratio = float(
        next(line.split()[1] for line in text.splitlines() if line.startswith("tokenomy_cache_hit_ratio "))
    )
    assert 0.3 < ratio < 0.6
    assert 'tokenomy_request_duration_seconds_bucket{le="+Inf"} 2' in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2


def test_cache_header_diagnoses_a_miss(gw: Stack) -> None:
    c = anthropic.Anthropic(base_url=gw.url, api_key="sk-test", max_retries=0)
    msgs = [{"role": "user", "content": "hi"}]
    first = c.messages.with_raw_response.create(model=MODEL, max_tokens=20, system=SYSTEM, messages=msgs)  # type: ignore[arg-type]
    assert "write=" in first.headers["x-tokenomy-cache"]
    changed = [{**SYSTEM[0], "text": "Today is Tuesday. " + SYSTEM[0]["text"]}]
    second = c.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=20,
        system=changed,
        messages=msgs,
        extra_headers={"x-tokenomy-run": first.headers["x-tokenomy-run"]},  # type: ignore[arg-type]
    )
    header = second.headers["x-tokenomy-cache"]
    assert "read=0" in header and "miss=none" not in header, header
    with c.messages.stream(model=MODEL, max_tokens=20, system=changed, messages=msgs) as st:  # type: ignore[arg-type]
        predicted = st.response.headers["x-tokenomy-cache"]
        st.get_final_message()
    assert predicted.startswith("source=predicted") and "read=0" not in predicted
    c.close()
    rows = gw.rows()
    assert rows[1].miss_cause and rows[1].diagnosis and rows[1].run_id == rows[0].run_id

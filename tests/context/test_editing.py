"""The context-editing trigger: the edit it emits, once, and the server model simulate uses."""

from __future__ import annotations

from _ctx_agent import body

from tokenomy.blocks import parse_request
from tokenomy.context.editing import (
    BETA,
    EDIT_TYPE,
    SERVER_PLACEHOLDER,
    EditingOptions,
    EditingState,
    EditingTransform,
    clearing_config,
    context_editing_body,
    server_clear,
)
from tokenomy.context.mask import TurnEstimator
from tokenomy.model import Usage


def _long_runs_seen(n: int) -> TurnEstimator:
    est = TurnEstimator(ended_after_s=100)
    t = 0.0
    for run in range(3):
        for _ in range(n):
            est.seen(f"old{run}", t)
            t += 1
        t += 1000
    return est


def test_trigger_fires_once_and_repeats_the_same_bytes() -> None:
    state = EditingState(estimator=_long_runs_seen(400))
    fired = []
    for turns in range(1, 60):
        out, edits = context_editing_body(body(turns), state, at=10_000 + turns * 10.0)
        if edits:
            fired.append((turns, edits[0]))
        sent = parse_request(out)
        state.observe(Usage(cache_read=sent.total_tokens - 300, cache_write_5m=300), 10_000 + turns * 10.0)
        if state.config is not None:
            assert out["context_management"] == state.config
    assert len(fired) == 1
    turns, edit = fired[0]
    assert edit.beta == BETA
    cfg = edit.config["edits"][0]
    assert cfg["type"] == EDIT_TYPE and cfg["keep"] == {"type": "tool_uses", "value": 10}
    assert 0 < edit.clear_at_least <= edit.clearable_tokens
    assert cfg["clear_at_least"]["value"] == edit.clear_at_least
    assert cfg["trigger"]["value"] <= parse_request(body(turns)).total_tokens


def test_a_client_edit_is_left_alone() -> None:
    b = {**body(30), "context_management": {"edits": [{"type": EDIT_TYPE}]}}
    out, edits = context_editing_body(b, EditingState(), at=0.0)
    assert edits == [] and out == b


def test_server_model_clears_all_but_keep_when_enough_goes() -> None:
    b = {**body(8), "context_management": clearing_config(trigger=1000, keep=3, clear_at_least=1000)}
    seen, n, tokens = server_clear(b)
    assert n == 5 and tokens > 1000
    results = [
        m["content"][0] for m in seen["messages"] if isinstance(m["content"], list) and m["role"] == "user"
    ]
    assert [r["content"] == SERVER_PLACEHOLDER for r in results] == [True] * 5 + [False] * 3
    # Below the trigger, or when too little would go, nothing is cleared.
    for cfg in (clearing_config(trigger=10**7, keep=3, clear_at_least=0),
                clearing_config(trigger=1000, keep=3, clear_at_least=10**7)):  # fmt: skip
        assert server_clear({**body(8), "context_management": cfg})[1] == 0


def test_simulated_editing_changes_the_messages_level_parameters() -> None:
    tr = EditingTransform(EditingOptions(keep=3))
    tr.state("r").config = clearing_config(trigger=1000, keep=3, clear_at_least=1000)
    req = parse_request(body(8))
    out, side = tr.transform(req, run_id="r", at=0.0)
    assert side == ()
    assert out.params["messages"] != req.params["messages"]  # the edit is a prompt-affecting parameter
    assert out.total_tokens < req.total_tokens

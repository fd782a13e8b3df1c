"""The tool-output pruner: budget, what it keeps, and that it never invents text."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenomy.cli import cli
from tokenomy.context.prune import head_tail, prune
from tokenomy.tokens import DEFAULT_COUNTER

MARKER = re.compile(r"\[… \d+ (?:similar lines?|lines?|chars) removed …\]|\[… \d+ …\]|\[…\]")

BUILD_LOG = "\n".join(
    [f"[{i:4d}/2000] Compiling src/module_{i}.c" for i in range(1, 1200)]
    + [
        "src/libponyc/ast/parser.c:412:5: error: expected ';' before 'return'",
        "  412 |     return x",
        "      |     ^~~~~~",
    ]
    + [f"[{i:4d}/2000] Compiling src/other_{i}.c" for i in range(1200, 2000)]
    + ["make: *** [Makefile:42: all] Error 1", "FAILED tests/test_parser.py::test_semicolon - AssertionError"]
)


def _pieces(text: str) -> list[str]:
    return [p.strip() for part in MARKER.split(text) for p in part.split("\n") if p.strip()]


def test_keeps_errors_failing_tests_and_paths_within_budget() -> None:
    original = DEFAULT_COUNTER.count_text(BUILD_LOG)
    res = prune(BUILD_LOG, ratio=0.1)
    assert res.tokens <= original * 0.1 + 10
    assert "src/libponyc/ast/parser.c:412:5: error: expected ';' before 'return'" in res.text
    assert "make: *** [Makefile:42: all] Error 1" in res.text
    assert "FAILED tests/test_parser.py::test_semicolon - AssertionError" in res.text
    assert (
        "[1   1/2000] Compiling src/module_1.c" in res.text or "Compiling src/module_1.c" in res.text
    )  # head
    assert MARKER.search(res.text)
    base = head_tail(BUILD_LOG, budget=int(original * 0.1))
    assert "parser.c:412:5: error" not in base  # what plain truncation loses


def test_collapses_repeats_and_strips_ansi_and_progress() -> None:
    text = "\n".join(
        ["\x1b[32mok\x1b[0m"]
        + ["Downloading 45% |████████      | 1.2MB/s"] * 3
        + ["retrying connection attempt 7"] * 40
        + ["\x1b[31merror: connection refused\x1b[0m"]
    )
    res = prune(text)
    assert "\x1b" not in res.text
    assert "Downloading" not in res.text
    assert "[… 38 similar lines removed …]" in res.text
    assert "error: connection refused" in res.text


def test_carriage_return_overwrites_keep_the_last_state() -> None:
    assert prune("progress 10%\rprogress 100%\rdone").text == "done"


def test_bad_input_never_crashes_and_keeps_errors() -> None:
    assert prune("").text == ""
    assert (
        prune(b"\x00\x01\xff\xfe binary \x80 error: bad magic number\n", budget=50).text.count("error") == 1
    )
    assert "error" in prune(b"caf\xe9 \xff\xfe\nfatal error: invalid utf-8 here\n", budget=20).text
    huge = "x" * 5_000_000 + " ERROR: disk full at /var/log/app.log:12 " + "y" * 5_000_000
    res = prune(huge, budget=200)
    assert "ERROR: disk full" in res.text
    assert res.tokens <= 200
    assert len(res.text) < 5000
    assert "ERROR: disk full at /var/log/app.log:12" in prune(huge, budget=60).text


def test_tight_budget_keeps_the_most_needles_per_token() -> None:
    long_error = "error: " + " ".join(f"detail{k}" for k in range(200))
    short = [f"E{k}: error: disk {k} full" for k in range(5)]
    text = "\n".join([long_error] + [f"step {k} ok, nothing to see here at all" for k in range(40)] + short)
    res = prune(text, budget=60)
    assert res.tokens <= 60
    assert all(line in res.text for line in short)  # five cheap error lines, not one dear one


def test_long_line_is_cut_to_its_important_spans() -> None:
    line = "lorem ipsum dolor " * 40 + "see src/app/main.py:88 for details " + "sit amet " * 40
    text = "\n".join(["header", line, "footer"])
    res = prune(text, budget=20)
    assert res.tokens <= 20
    assert "src/app/main.py:88" in res.text
    assert "[…]" in res.text
    assert "lorem ipsum dolor lorem" not in res.text


def test_markers_shrink_only_when_the_needles_overflow() -> None:
    loose = prune(BUILD_LOG, ratio=0.05).text
    assert re.search(r"\[… \d+ lines removed …\]", loose)  # room to say how much was removed
    errors = "\n".join(
        f"{k}: error: module {k} failed to build at src/m{k}.c:{k}\n" + "ok\n" * 30 for k in range(30)
    )
    tight = prune(errors, ratio=0.05)
    assert tight.tokens <= DEFAULT_COUNTER.count_text(errors) * 0.05
    assert re.search(r"\[… \d+ …\]", tight.text)  # still says how many lines each gap removed
    assert "lines removed" not in tight.text  # in 4 tokens, not 6


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=80),
            st.sampled_from(
                [
                    "error: it broke",
                    '  File "a.py", line 3, in f',
                    "tests/x.py:12: AssertionError",
                    "PASS test_ok",
                ]
            ),
        ),
        max_size=200,
    ),
    st.integers(min_value=5, max_value=400),
)
def test_pruned_output_is_made_only_of_input_text(lines: list[str], budget: int) -> None:
    text = "\n".join(lines)
    res = prune(text, budget=budget)
    out = res.text
    for piece in _pieces(out):
        assert piece in text
    assert res.tokens == DEFAULT_COUNTER.count_text(out) <= budget
    rows = out.split("\n")
    for a, b in zip(rows, rows[1:], strict=False):  # markers that meet are merged
        assert not (MARKER.fullmatch(a.strip()) and MARKER.fullmatch(b.strip())) or not a.strip()


def test_cli_reads_stdin_and_files(tmp_path: object) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["prune", "--ratio", "0.1", "-"], input=BUILD_LOG)
    assert res.exit_code == 0, res.output
    assert "error: expected ';'" in res.output
    res = runner.invoke(cli, ["prune", "/nonexistent/file.log"])
    assert res.exit_code != 0


@pytest.mark.parametrize("line", ["Coverage: 85%", "100% of checks passed"])
def test_a_lone_percentage_line_is_a_result_not_progress_noise(line: str) -> None:
    res = prune(f"header\n{line}\nfooter")  # no budget: only noise may go
    assert line in res.text

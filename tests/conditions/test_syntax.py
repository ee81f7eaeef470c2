"""The condition parser: a table of valid and invalid conditions, and hostile input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.conditions import (
    COMMON,
    MAX_LENGTH,
    ConditionError,
    Function,
    Literal,
    Placeholder,
    check_placeholders,
    parse_condition,
)

HTTP = frozenset({"STATUS", "BODY", "HEADERS", "CERTIFICATE_EXPIRATION"})


@pytest.mark.parametrize(
    ("text", "left", "operator", "right"),
    [
        ("[STATUS] == 200", ("STATUS", ()), "==", "200"),
        ("[RESPONSE_TIME] < 500", ("RESPONSE_TIME", ()), "<", "500"),
        ("[BODY].status == UP", ("BODY", ("status",)), "==", "UP"),
        ("[BODY].a.b[0].c != x", ("BODY", ("a", "b", 0, "c")), "!=", "x"),
        ("[BODY][0].id >= 1", ("BODY", (0, "id")), ">=", "1"),
        ('[BODY]."a.b c".d <= 2', ("BODY", ("a.b c", "d")), "<=", "2"),
        ('[BODY]."say \\"hi\\"" == x', ("BODY", ('say "hi"',)), "==", "x"),
        ("[HEADERS].content-type == text/html", ("HEADERS", ("content-type",)), "==", "text/html"),
        ("[RESULT][1].name == bob", ("RESULT", (1, "name")), "==", "bob"),
        ("[CERTIFICATE_EXPIRATION] > 48h", ("CERTIFICATE_EXPIRATION", ()), ">", "48h"),
        ("[CONNECTED] == true", ("CONNECTED", ()), "==", "true"),
        ('[BODY].msg == "a == b"', ("BODY", ("msg",)), "==", "a == b"),
        ("[BODY].msg == has spaces inside", ("BODY", ("msg",)), "==", "has spaces inside"),
        ("  [STATUS]   ==   200  ", ("STATUS", ()), "==", "200"),
        ("[BODY].x == a<b", ("BODY", ("x",)), "==", "a<b"),  # no spaces: not an operator
    ],
)
def test_valid(text: str, left: tuple[str, tuple[object, ...]], operator: str, right: str) -> None:
    condition = parse_condition(text)
    assert isinstance(condition.left, Placeholder)
    assert (condition.left.name, condition.left.path) == left
    assert condition.operator == operator
    assert isinstance(condition.right, Literal) and condition.right.value == right


def test_functions() -> None:
    c = parse_condition("len([BODY].data) > 0")
    assert isinstance(c.left, Function) and c.left.name == "len"
    assert c.left.argument is not None and c.left.argument.path == ("data",)
    c = parse_condition("has([BODY].errors) == false")
    assert isinstance(c.left, Function) and c.left.name == "has"
    c = parse_condition('[STATUS] == any(200, 429, "a, b")')
    assert isinstance(c.right, Function) and c.right.values == ("200", "429", "a, b")
    c = parse_condition("[BODY] == pat(*<h1>Example Domain</h1>*)")
    assert isinstance(c.right, Function) and c.right.values == ("*<h1>Example Domain</h1>*",)
    assert [p.name for p in parse_condition("len([BODY].a) == [STATUS]").placeholders()] == [
        "BODY",
        "STATUS",
    ]


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("[STATUS]==200", 0, "no comparison"),
        ("[STATUS] = 200", 9, "compare with =="),
        ("", 0, "no comparison"),
        (" == 200", 1, "something on each side"),
        ("[STATUS] == ", 12, "something on each side"),
        ("[status] == 200", 0, "capitals"),
        ("[] == 1", 0, "capitals"),
        ("[STATUS == 200", 0, '"[" is never closed'),
        ("[BODY]x == 1", 6, "after the placeholder"),
        ("[BODY].a b == 1", 7, "quote a key"),
        ("[BODY]. == 1", 7, "a key after"),
        ("[BODY][x] == 1", 6, "index"),
        ("[BODY][-1] == 1", 6, "index"),
        ('[BODY]."open == 1', 7, "never closed"),
        ("len(200) > 1", 4, "takes a placeholder"),
        ("len([BODY] > 1", 3, '"(" is never closed'),
        ("[STATUS] 200", 0, "no comparison"),
        ("[STATUS] < any(1, 2)", 11, "== or !="),
        ("[BODY] > pat(*x*)", 9, "== or !="),
        ("[STATUS] == any(1, , 2)", 19, "empty value"),
        ("pat(a) == any(b)", 7, "cannot be compared"),
        ("x" * (MAX_LENGTH + 1), MAX_LENGTH, "longer than"),
        ("[BODY]" + ".a" * 65 + " == 1", 134, "more than 64 steps"),
    ],
)
def test_invalid(text: str, position: int, words: str) -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    assert words in caught.value.message
    assert caught.value.position == position
    assert str(caught.value).endswith(f"(at character {position + 1})")


@pytest.mark.parametrize(
    ("text", "kind", "allowed", "words", "position"),
    [
        ("[STATUS] == 200", "tcp", frozenset(), "[STATUS] is not a placeholder of tcp", 0),
        ("len([ROWS]) > 1", "http", HTTP, "[ROWS] is not a placeholder of http", 4),
        ("[HEADERS] == x", "http", HTTP, "needs one key", 0),
        ("[HEADERS].a.b == x", "http", HTTP, "needs one key", 0),
        ("[STATUS].x == 1", "http", HTTP, "takes no path", 0),
        ("[IP][0] == 1", "http", HTTP, "takes no path", 0),
    ],
)
def test_placeholders_per_kind(
    text: str, kind: str, allowed: frozenset[str], words: str, position: int
) -> None:
    with pytest.raises(ConditionError) as caught:
        check_placeholders(parse_condition(text), kind, allowed)
    assert words in caught.value.message and caught.value.position == position
    assert "[CONNECTED]" in caught.value.message or "needs" in words or "path" in words


def test_common_placeholders_everywhere() -> None:
    for name in COMMON:
        check_placeholders(parse_condition(f"[{name}] != x"), "tcp", frozenset())
    check_placeholders(parse_condition("[BODY].a[0] == 1"), "http", HTTP)
    check_placeholders(parse_condition("[HEADERS].server == x"), "http", HTTP)


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list('[]().,"\\ =!<>*ABSTODYatus0123len hasyp')), max_size=80)
)
def test_never_raises_anything_but_its_own_error(text: str) -> None:
    try:
        parse_condition(text)
    except ConditionError as exc:
        assert 0 <= exc.position <= len(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text(text: str) -> None:
    with contextlib.suppress(ConditionError):
        parse_condition(text)


@pytest.mark.parametrize(
    "text",
    [
        "[BODY]" + "[0]" * 1300 + " == 1",  # deep path: refused at the step limit
        "(" * 4000 + " == 1",
        "[BODY].x == " + "a" * (MAX_LENGTH - 20),
        '"' * MAX_LENGTH,
        "[BODY]." + '"' + "\\" * 4000,
    ],
)
def test_long_and_deep_input_ends(text: str) -> None:
    # Completes (the parser is one pass) with a result or its own error, never another.
    with contextlib.suppress(ConditionError):
        parse_condition(text)

"""EaseProbe's `eval`: the expression language, the extractors over json/xml/html/text, and
http probes judged by it against a local server (real bodies, real checks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.conditions import ConditionError
from probe.conditions.documents import EvalVariable, compile_eval
from probe.conditions.expression import EvalError, parse_expression
from probe.core.result import Status
from probe.core.scheduler import run_check
from probe.probers.base import SharedResources
from probe.probers.http import HTTPProber, HTTPSpec
from tests.conditions import has_problem, load_problems
from tests.support import probers as scenarios

NOW = 1_750_000_000.0


def holds(doc: str, expression: str, body: str, variables: list[EvalVariable] = ()) -> bool:
    ok, _ = compile_eval(doc, expression, list(variables)).judge(body, clock=lambda: NOW)
    return ok


@pytest.mark.parametrize(
    "expression",
    [
        "1 + 2 * 3 == 7",
        "(1 + 2) * 3 == 9",
        "2 ** 3 ** 2 == 512",  # ** groups to the right
        "10 - 2 - 3 == 5",  # - groups to the left
        "7 % 4 == 3 && -2 < 0",
        "!(1 > 2) && true || false",
        "'ab' + 'cd' == 'abcd'",
        "'abc' < 'abd'",
        "1 > 2 ? false : true",
        "'service-12' =~ '^service-\\\\d+$'",
        "'x' !~ 'y'",
        "now() == 1750000000",
        "duration('1m30s') == 90000000000",
        "strlen('héllo') == 6",  # bytes, as Go's len
        "1.5e3 == 1500",
        "'2025-01-01' < now()",  # a text compared with a number reads as a time
        "5",  # a number other than 0 holds
        "'text'",  # a non-empty text holds
    ],
)
def test_language(expression: str) -> None:
    assert holds("json", expression, "{}"), expression


@pytest.mark.parametrize(
    ("expression", "position", "words"),
    [
        ("1 +", 3, "expected a value, found the end"),
        ("(1 + 2", 6, 'expected ")", found the end'),
        ("1 = 1", 2, 'unexpected "="'),
        ("x_int('//a') > 1 2", 17, "after a complete expression"),
        ("foo('x')", 0, 'no function "foo"'),
        ("now(1)", 0, "now() takes 0 arguments"),
        ("x_str()", 0, "x_str() takes 1 argument"),
        ("missing > 1", 0, '"missing" is not a variable'),
        ("1 ? 2", 5, 'expected ":"'),
        ("(" * 70 + "1" + ")" * 70, 64, "nested deeper than 64"),
        ("@", 0, 'unexpected "@"'),
    ],
)
def test_expression_errors(expression: str, position: int, words: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_eval("json", expression, [])
    assert words in caught.value.message
    assert caught.value.position == position


def test_query_errors_at_load() -> None:
    with pytest.raises(ValueError, match="bad XPath"):
        compile_eval("xml", "x_str('//a[') == ''", [])
    with pytest.raises(ValueError, match="bad pattern"):
        compile_eval("text", "x_str('(') == ''", [])
    with pytest.raises(ValueError, match="bad XPath"):
        compile_eval("json", "v == 1", [EvalVariable("v", "int", "//[")])


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("1 / 0 == 1", "division by zero"),
        ("10 ** 400 > 1", "out of range"),
        ("'a' && true", "needs true or false"),
        ("'a' - 1", "needs numbers"),
        ("'soon' > 1", "is neither"),
        ("x_int('//name') > 1", 'gave "bob", not a int'),
        ("x_bool('//name')", "not a bool"),
        ("x_time('//name') > 0", "not a time"),
        ("duration('soon') > 0", "invalid duration"),
    ],
)
def test_evaluation_errors_are_said(expression: str, words: str) -> None:
    program = compile_eval("json", expression, [])
    with pytest.raises(EvalError, match=words):
        program.judge(json.dumps({"name": "bob"}))


JSON_BODY = json.dumps(
    {
        "status": "ok",
        "total": 42,
        "ratio": 0.5,
        "healthy": True,
        "updated": "2025-06-15T12:00:00Z",
        "uptime": "3h",
        "items": [{"name": "a"}, {"name": "b"}],
        "weird key": "w",
    }
)
XML_BODY = (
    "<?xml version='1.0'?><feed><title>News</title><entry id='1'><updated>"
    "2025-06-15T12:00:00Z</updated><count>7</count></entry></feed>"
)
HTML_BODY = (
    "<html><head><title>Shop</title></head><body><div id='price'>12.50</div>"
    "<ul><li>a</li><li>b</li></ul><p>open <b>now</b></p></body></html>"
)
TEXT_BODY = "version: 2.3.1\nconnections=17\nstatus=GREEN\n"


@pytest.mark.parametrize(
    ("doc", "body", "expression"),
    [
        ("json", JSON_BODY, "x_str('/status') == 'ok' && x_str('//status') == 'ok'"),
        ("json", JSON_BODY, "x_int('//total') == 42 && x_float('//ratio') == 0.5"),
        ("json", JSON_BODY, "x_bool('//healthy')"),
        ("json", JSON_BODY, "x_str('//items/*[2]/name') == 'b'"),
        ("json", JSON_BODY, "x_str('//weird_key') == 'w'"),
        ("json", JSON_BODY, "x_time('//updated') == 1749988800"),
        ("json", JSON_BODY, "now() - x_time('//updated') < duration('24h') / 1000000000 * 10"),
        ("json", JSON_BODY, "x_duration('//uptime') > duration('1h')"),
        ("json", JSON_BODY, "x_str('//nothing') == ''"),  # selects nothing: ""
        ("json", JSON_BODY, "strlen(x_str('//status')) == 2"),
        ("xml", XML_BODY, "x_str('/feed/title') == 'News' && x_int('//entry[@id=1]/count') > 5"),
        ("xml", XML_BODY, "x_time('//updated') > '2025-01-01'"),
        ("xml", XML_BODY, "x_int('count(//entry)') == 1"),
        ("html", HTML_BODY, "x_float(\"//div[@id='price']\") < 20 && x_str('//title') == 'Shop'"),
        ("html", HTML_BODY, "x_int('count(//li)') == 2 && x_str('//p') == 'open now'"),
        ("text", TEXT_BODY, "x_str('version: (\\\\S+)') == '2.3.1'"),
        ("text", TEXT_BODY, "x_int('connections=(?P<n>\\\\d+)') < 100"),
        ("text", TEXT_BODY, "x_str('status=[A-Z]+') == 'status=GREEN'"),  # no group: whole match
    ],
)
def test_documents(doc: str, body: str, expression: str) -> None:
    program = compile_eval(doc, expression, [])
    ok, read = program.judge(body, clock=lambda: NOW)
    assert ok, (expression, read)


def test_variables_and_what_was_read() -> None:
    program = compile_eval(
        "json",
        "total > 40 && state == 'ok' && since < now()",
        [
            EvalVariable("total", "int", "//total"),
            EvalVariable("state", "string", "//status"),
            EvalVariable("since", "time", "//updated"),
        ],
    )
    ok, read = program.judge(JSON_BODY, clock=lambda: NOW)
    assert ok
    assert read == 'total = 42, state = "ok", since = 1749988800'


def test_hostile_documents() -> None:
    # Entities are never resolved (no file read, no billion laughs), nothing from the network.
    xxe = '<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><r><a>&e;</a></r>'
    ok, read = compile_eval("xml", "x_str('//a') == ''", []).judge(xxe)
    assert "root:" not in read
    laughs = (
        '<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
        "]><l>&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;</l>"
    )
    _, read = compile_eval("xml", "strlen(x_str('/l')) < 100000", []).judge(laughs)
    assert len(read) < 1000
    deep_json = "[" * 100_000 + "]" * 100_000
    with pytest.raises(EvalError, match="not JSON"):
        compile_eval("json", "x_str('//a') == ''", []).judge(deep_json)
    deep_xml = "<a>" * 100_000 + "</a>" * 100_000
    with pytest.raises(EvalError, match="not XML"):
        compile_eval("xml", "x_str('//a') == ''", []).judge(deep_xml)
    with pytest.raises(EvalError, match="not XML"):
        compile_eval("xml", "x_str('//a') == ''", []).judge("{not xml")
    nested = json.dumps(_nest(900))
    ok, _ = compile_eval("json", "x_str('//leaf') == 'x'", []).judge(nested)
    assert ok  # deep but legal JSON is turned into a tree without recursion


def _nest(depth: int) -> Any:
    value: Any = {"leaf": "x"}
    for _ in range(depth):
        value = {"n": value}
    return value


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("0123456789.+-*/%()!=<>&|?:'\"xs_abc, ")), max_size=60)
)
def test_parser_never_raises_anything_but_its_own_error(text: str) -> None:
    try:
        parse_expression(text)
    except ConditionError as exc:
        assert 0 <= exc.position <= len(text)


# ------------------------------------------------------------------ on real http checks


def app() -> web.Application:
    def responder(body: str, content_type: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            return web.Response(text=body, content_type=content_type)

        return handle

    return scenarios.web_app(
        {
            "GET /json": responder(JSON_BODY, "application/json"),
            "GET /xml": responder(XML_BODY, "application/xml"),
            "GET /html": responder(HTML_BODY, "text/html"),
            "GET /text": responder(TEXT_BODY, "text/plain"),
        }
    )


async def check(url: str, evaluation: dict[str, Any]) -> Any:
    spec = HTTPSpec(name="web", url=url, timeout="5s", eval=evaluation)
    probe = HTTPProber(spec, SharedResources())
    try:
        return (await run_check(probe)).result
    finally:
        await probe.resources.aclose()


@pytest.mark.parametrize(
    ("path", "evaluation"),
    [
        ("/json", {"doc": "json", "expression": "x_int('//total') == 42"}),
        ("/xml", {"doc": "XML", "expression": "x_str('//title') == 'News'"}),
        ("/html", {"doc": "HTML", "expression": "x_float(\"//div[@id='price']\") < 20"}),
        (
            "/text",
            {
                "doc": "text",
                "expression": "conns < 100",
                "variables": [{"name": "conns", "type": "int", "query": "connections=(\\d+)"}],
            },
        ),
    ],
)
async def test_http_eval_holds(web_server: Any, path: str, evaluation: dict[str, Any]) -> None:
    base = await web_server(app())
    result = await check(f"{base}{path}", evaluation)
    assert result.status is Status.UP, result.message
    assert "eval holds" in result.message


async def test_http_eval_fails_with_what_it_read(web_server: Any) -> None:
    base = await web_server(app())
    result = await check(f"{base}/json", {"doc": "json", "expression": "x_int('//total') > 50"})
    assert result.status is Status.DOWN
    assert result.message == 'eval "x_int(\'//total\') > 50" is false (x_int("//total") = 42)'
    broken = await check(f"{base}/html", {"doc": "json", "expression": "x_str('//a') == ''"})
    assert broken.status is Status.DOWN
    assert broken.message.startswith("eval \"x_str('//a') == ''\": the body is not JSON")


def test_eval_config_errors_are_located(tmp_path: Path) -> None:
    problems = load_problems(
        tmp_path,
        "http:\n"
        "  - name: web\n"
        "    url: http://127.0.0.1:9/\n"
        "    eval:\n"
        "      doc: json\n"
        "      expression: \"x_int('//a') > \"\n"
        "  - name: feed\n"
        "    url: http://127.0.0.1:9/\n"
        "    eval: {doc: yaml, expression: 'true'}\n",
    )
    assert has_problem(
        problems,
        "probes.yaml:6:19: http[0].eval.expression:",
        "expected a value, found the end (at character 16)",
    ), problems
    assert has_problem(problems, "probes.yaml:9:17: http[1].eval.doc:"), problems

"""The template engine and the shipped templates: every format x event renders, the JSON
formats stay valid JSON and the HTML formats stay escaped whatever the data, data is never
template source, overrides (inline and from a file) work, and broken ones are config errors."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from probe.notify.base import Event
from probe.notify.templates import (
    FORMATS,
    HTML_FORMATS,
    JSON_FORMATS,
    TemplatedSpec,
    Templates,
    clip,
    duration_text,
    read_overrides,
    render_json,
)
from probe.shipped_templates import template_root
from tests.notify.fake_apis import HOSTILE, down, group, recovery, sla


class Spec(TemplatedSpec):
    kind = "test"


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates("Europe/Berlin", name="prod-probe")


def sample(event: Event):
    if event is Event.SLA:
        return sla()
    if event is Event.RECOVERY:
        return recovery()
    if event is Event.TEST:
        return down(event=Event.TEST, message="sample")
    if event is Event.GROUP:
        return group()
    return down()


# -- shipped templates ---------------------------------------------------------------------


def test_every_format_has_a_template_per_event() -> None:
    root = template_root()
    assert root.joinpath("README.txt").is_file()
    for format, ext in FORMATS.items():
        for event in Event:
            node = root.joinpath(format, f"{event.value}.{ext}.j2")
            assert node.is_file(), f"missing {format}/{event.value}.{ext}.j2"
            assert Templates.check(node.read_text(encoding="utf-8")) is None


@pytest.mark.parametrize("format", sorted(FORMATS))
@pytest.mark.parametrize("event", list(Event))
def test_renders_with_hostile_data(templates: Templates, format: str, event: Event) -> None:
    """Names and messages full of markup, quotes and template syntax: JSON formats stay
    valid JSON, HTML formats escape, and nothing in the data is evaluated."""
    if event is Event.SLA:
        note = sla()
        rows = [dict(row, name=HOSTILE) for row in note.report["rows"]]
        note = sla(report={**note.report, "rows": rows})
    elif event is Event.GROUP:
        note = group(name=HOSTILE, message=HOSTILE + "\n</pre><script>")
    else:
        note = sample(event)
        hostile = {"probe": HOSTILE, "endpoint": HOSTILE, "message": HOSTILE + "\n</pre><script>"}
        note = type(note)(**{**note.to_json(), "event": event, **hostile})
    text = templates.render(format, event, note)
    assert "zzyy" not in text  # {{ "zz" ~ "yy" }} in the data stayed data
    if format in JSON_FORMATS:
        document = json.loads(text)
        if format == "webhook" and event is Event.GROUP:
            assert document["report"]["down"][0]["probe"] == HOSTILE + "-001"
        elif format == "webhook" and event is not Event.SLA:
            assert document["probe"] == HOSTILE
    if format in HTML_FORMATS:
        assert "<script>" not in text
        assert "<b>&amp;" not in text
        assert "api &lt;b&gt;&amp;amp; &#34;x&#34; &#39;y&#39;" in text


def test_down_and_recovery_variables(templates: Templates) -> None:
    text = templates.render("text", Event.RECOVERY, recovery())
    assert text.startswith("[RECOVERED] api is up again")
    assert "Downtime: 2h 5m" in text
    # settings.timezone: 10:00 UTC is 12:00 in Berlin in May
    assert "Since:    2024-05-01 12:00:00 CEST" in text
    variables = templates.variables(recovery())
    assert variables["time_iso"] == "2024-05-01T12:05:00Z"
    assert variables["duration_text"] == "2h 5m"
    assert variables["settings_name"] == "prod-probe"
    assert isinstance(variables["time"], datetime)
    offset = variables["time"].utcoffset()
    assert offset is not None and offset.total_seconds() == 7200


def test_webhook_document(templates: Templates) -> None:
    document = json.loads(templates.render("webhook", Event.DOWN, down(position=3)))
    assert document["event"] == "down"
    assert document["probe"] == "api"
    assert document["time"] == "2024-05-01T10:00:00Z"
    assert document["timestamp"] == 1714557600.0
    assert document["position"] == 3
    assert document["labels"] == {"team": "core"}
    assert document["duration"] is None
    report = json.loads(templates.render("webhook", Event.SLA, sla()))
    assert report["probe"] is None
    assert [row["name"] for row in report["report"]["rows"]] == [
        "probe-0000",
        "probe-0001",
        "probe-0002",
    ]
    assert report["report"]["rows"][2]["downtime_text"] == "2m"


def test_sla_report_rows(templates: Templates) -> None:
    text = templates.render("text", Event.SLA, sla())
    assert text.startswith("[SLA] SLA report: 2024-05-01")
    assert "probe-0001: n/a, down 1m, 1 incident, p95 n/a" in text
    assert "probe-0002: 99.98%, down 2m, 2 incidents, p95 102 ms" in text
    table = templates.render("markdown", Event.SLA, sla())
    assert "| probe\\-0000 |" not in table  # `-` is only escaped at a line start
    assert "| probe-0000 | 100% | 0s | 0 | 100 ms |" in table


def test_telegram_escapes_everything_user_provided(templates: Templates) -> None:
    text = templates.render("telegram", Event.DOWN, down(probe="a<b>&_*[]", message="x < y"))
    assert "<b>a&lt;b&gt;&amp;_*[] is down</b>" in text
    assert "<pre>x &lt; y</pre>" in text


def test_slack_escapes_mrkdwn_controls(templates: Templates) -> None:
    payload = templates.render_json("slack", Event.DOWN, down(probe="<!channel> & co"))
    assert payload["text"] == "🔴 &lt;!channel&gt; &amp; co is down"
    # plain_text needs no escaping
    assert payload["blocks"][0]["text"]["text"] == "🔴 <!channel> & co is down"


def test_markdown_escapes_and_code_spans(templates: Templates) -> None:
    text = templates.render("markdown", Event.DOWN, down(probe="a_b*c", endpoint="x`y"))
    assert "### 🔴 a\\_b\\*c is down" in text
    assert "``x`y``" in text


# -- filters and helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, ""),
        (0, "0s"),
        (0.4, "0s"),
        (45, "45s"),
        (60, "1m"),
        (303, "5m 3s"),
        (7500, "2h 5m"),
        (7200, "2h"),
        (86400 * 3 + 3600 * 4 + 59, "3d 4h"),
        (86400, "1d"),
    ],
)
def test_duration_text(seconds: float | None, shown: str) -> None:
    assert duration_text(seconds) == shown


def test_filters_in_templates(templates: Templates) -> None:
    source = (
        "{{ 7500 | duration }}|{{ time | datetime('%H:%M') }}|{{ 1714557600 | datetime('%d %H') }}"
        "|{{ message | tojson }}|{{ none | tojson }}|{{ 99.999 | percent }}|{{ 12.34 | ms }}"
    )
    out = templates.render("text", Event.DOWN, down(message='a"b'), override=source)
    assert out == '2h 5m|12:00|01 12|"a\\"b"|null|99.999%|12 ms'


def test_clip_never_cuts_an_entity() -> None:
    assert clip("abc", 5) == "abc"
    assert clip("abcdef", 4) == "abc…"
    assert clip("ab&amp;cd", 5) == "ab…"
    assert clip("ab&amp;cd", 8) == "ab&amp;…"
    assert clip("a & b c d", 5) == "a & …"  # a lone & is no entity


# -- overrides -----------------------------------------------------------------------------


def test_inline_override(templates: Templates) -> None:
    out = templates.render(
        "telegram", Event.DOWN, down(probe="<x>"), override="<b>{{ probe }}</b> {{ status }}"
    )
    assert out == "<b>&lt;x&gt;</b> down"
    # the plain formats do not escape
    assert templates.render("text", Event.DOWN, down(probe="<x>"), override="{{ probe }}") == "<x>"


def test_override_can_include_a_shipped_template(templates: Templates) -> None:
    out = templates.render(
        "text", Event.DOWN, down(), override='PAGE\n{% include "text/down.txt.j2" %}'
    )
    assert out.startswith("PAGE\n[DOWN] api is down")


def test_override_from_file(tmp_path: Path, templates: Templates) -> None:
    (tmp_path / "down.j2").write_text("custom {{ probe }} {{ duration_text }}", encoding="utf-8")
    spec = Spec.model_validate(
        {"name": "n", "template_file": {"down": "down.j2"}, "template": {"recovery": "r"}},
        context={"base_dir": tmp_path},
    )
    assert spec.override(Event.DOWN) == "custom {{ probe }} {{ duration_text }}"
    assert spec.override("recovery") == "r"
    assert spec.override(Event.SLA) is None
    out = templates.render("text", Event.DOWN, down(), override=spec.override(Event.DOWN))
    assert out == "custom api "


def test_check_reports_the_line() -> None:
    assert Templates.check("ok {{ probe }}") is None
    problem = Templates.check("line one\n{% if x %}\nno end")
    assert problem is not None
    assert problem.startswith("line 3: Unexpected end of template.")
    assert (
        Templates.check("{{ probe | nosuchfilter }}") == "line 1: No filter named 'nosuchfilter'."
    )
    assert Templates.check("{{ probe }") == "line 1: unexpected '}'"


def test_broken_override_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        Spec.model_validate({"name": "n", "template": {"down": "{{ probe"}})
    error = info.value.errors()[0]
    assert error["loc"] == ("template",)
    assert "down: line 1: unexpected end of template" in error["msg"]

    (tmp_path / "bad.j2").write_text("ok\n{% for x in y %}", encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        Spec.model_validate({"name": "n", "template_file": {"recovery": str(tmp_path / "bad.j2")}})
    error = info.value.errors()[0]
    assert error["loc"] == ("template_file",)
    assert "recovery:" in error["msg"] and "bad.j2: line 2:" in error["msg"]

    with pytest.raises(ValidationError, match=r"cannot read '.*missing\.j2'"):
        Spec.model_validate({"name": "n", "template_file": {"down": "missing.j2"}})
    (tmp_path / "d.j2").write_text("x", encoding="utf-8")
    with pytest.raises(ValidationError, match="use one"):
        Spec.model_validate(
            {
                "name": "n",
                "template": {"down": "x"},
                "template_file": {"down": str(tmp_path / "d.j2")},
            }
        )
    with pytest.raises(ValidationError):
        Spec.model_validate({"name": "n", "template": {"nosuchevent": "x"}})


def test_read_overrides_messages(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^template\.down: line 1:"):
        read_overrides({Event.DOWN: "{% if %}"}, {})
    with pytest.raises(ValueError, match=r"^template_file\.sla: cannot read"):
        read_overrides({}, {Event.SLA: tmp_path / "none.j2"})


def test_failing_override_falls_back_to_the_shipped_template(
    templates: Templates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="probe.notify.templates")
    out = templates.render("text", Event.DOWN, down(), override="{{ 1 / 0 }}")
    assert out.startswith("[DOWN] api is down")
    assert "ZeroDivisionError" in caplog.text
    assert "using the shipped template" in caplog.text


def test_sandbox_blocks_python_internals(
    templates: Templates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="probe.notify.templates")
    source = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    out = templates.render("text", Event.DOWN, down(), override=source)
    assert out.startswith("[DOWN]")  # refused, and the shipped template used
    assert "not allowed" in caplog.text or "SecurityError" in caplog.text
    # the data cannot be changed either (immutable sandbox)
    out = templates.render("text", Event.DOWN, down(), override="{{ labels.clear() }}")
    assert out.startswith("[DOWN]")


def test_json_override_that_is_not_json_falls_back(
    templates: Templates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="probe.notify.templates")
    document = render_json(templates, "webhook", Event.DOWN, down(), override='{"a": {{ probe }}}')
    assert document["probe"] == "api"
    assert "did not give valid JSON" in caplog.text
    document = render_json(
        templates, "webhook", Event.DOWN, down(), override='{"a": {{ probe | tojson }}}'
    )
    assert document == {"a": "api"}


def test_undefined_variables_render_empty(templates: Templates) -> None:
    assert templates.render("text", Event.DOWN, down(), override="[{{ nosuch }}]") == "[]"
    assert (
        templates.render("webhook", Event.DOWN, down(), override="{{ nosuch | tojson }}") == "null"
    )


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(max_size=40),
    message=st.text(max_size=200),
    labels=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
)
def test_json_formats_are_valid_json_for_any_data(
    name: str, message: str, labels: dict[str, str]
) -> None:
    templates = _shared()
    for event in (Event.DOWN, Event.RECOVERY):
        note = (down if event is Event.DOWN else recovery)(
            probe=name, message=message, endpoint=message[:50], labels=labels
        )
        for format in sorted(JSON_FORMATS):
            json.loads(templates.render(format, event, note))


_TEMPLATES: list[Templates] = []


def _shared() -> Templates:
    if not _TEMPLATES:
        _TEMPLATES.append(Templates())
    return _TEMPLATES[0]

"""The `probe` command: a thin layer over the library (DESIGN.md section 4).

Exit codes: 0 ok (for `once`: none down; for `notify-test`: every message accepted), 1 some
probe down (`once`) or some notifier failed (`notify-test`), 2 bad config or usage, 3 start-up
failure (store unusable, port taken). No traceback reaches the user for any input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from probe import __version__
from probe.config import Config, find_config_path, load_config
from probe.core.result import Result, Status
from probe.core.scheduler import run_all_once
from probe.durations import format_duration
from probe.errors import ConfigError, StartupError, StoreError
from probe.logs import setup_logging
from probe.text import escaped

__all__ = ["main"]

EXIT_OK, EXIT_DOWN, EXIT_CONFIG, EXIT_STARTUP = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a command ended by SIGPIPE
log = logging.getLogger("probe.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probe", description="Health prober: checks what probes.yaml lists, keeps SLA figures."
    )
    parser.add_argument("--version", action="version", version=f"probe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c",
            "--config",
            metavar="FILE",
            help="config file (default: $PROBE_CONFIG, then probes.yaml)",
        )
        return p

    run = with_config(sub.add_parser("run", help="probe until SIGINT/SIGTERM"))
    run.add_argument("--dry-notify", action="store_true", help="log notifications, send none")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error", "critical"])
    with_config(sub.add_parser("check", help="validate the config and print a summary"))
    once = with_config(sub.add_parser("once", help="check every probe once, then exit"))
    once.add_argument("--format", choices=["text", "json"], default="text")
    sla = with_config(sub.add_parser("sla", help="print SLA figures from the store"))
    sla.add_argument("--window", default="24h", help="24h 7d 30d 90d all hour day week month")
    sla.add_argument("--format", choices=["text", "json"], default="text")
    report = with_config(
        sub.add_parser("report", help="write the status page once from the store (no probing)")
    )
    report.add_argument(
        "-o", "--output", metavar="PATH", help="where to write (default: settings.status.path)"
    )
    notify_test = with_config(
        sub.add_parser(
            "notify-test", help="send a sample down and recovery message through each notifier"
        )
    )
    notify_test.add_argument("--notifier", metavar="NAME", help="only the notifier named NAME")
    sub.add_parser(
        "schema", help="print the config's JSON Schema (for editors: validation, completion)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `probe schema | head`: the reader left. Quiet, as a shell's own tools are; stdout is
        # pointed at /dev/null so the interpreter's final flush cannot complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "schema":
        return _cmd_schema()
    try:
        config = _load(args.config)
    except ConfigError as err:
        for warning in err.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    try:
        command = args.command
        if command == "check":
            return _cmd_check(config)
        if command == "once":
            return asyncio.run(_cmd_once(config, args.format))
        if command == "sla":
            return _cmd_sla(config, args.window, args.format)
        if command == "report":
            return asyncio.run(_cmd_report(config, args.output))
        if command == "notify-test":
            return asyncio.run(_cmd_notify_test(config, args.notifier))
        return _cmd_run(config, args.log_level, args.dry_notify)
    except (StoreError, StartupError) as err:
        print(f"probe: {err}", file=sys.stderr)
        return EXIT_STARTUP
    except KeyboardInterrupt:
        return 130


def _load(cli_value: str | None) -> Config:
    config = load_config(find_config_path(cli_value))
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return config


def _cmd_schema() -> int:
    from probe.config.schema import config_schema

    print(json.dumps(config_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK


def _cmd_check(config: Config) -> int:
    kinds = Counter(spec.kind for spec in config.probes)
    disabled = sum(1 for spec in config.probes if not spec.enabled)
    by_kind = ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items()))
    notifier_kinds = ", ".join(
        f"{kind}: {count}" for kind, count in sorted(config.notifier_counts.items())
    )
    print(f"{escaped(str(config.path))}: OK")
    print(f"  probes: {len(config.probes)}" + (f" ({by_kind})" if by_kind else ""))
    if disabled:
        print(f"  disabled: {disabled}")
    print(
        f"  notifiers: {config.notifier_count}" + (f" ({notifier_kinds})" if notifier_kinds else "")
    )
    for line in _success_code_lines(config):
        print(line)
    print(f"  store: {escaped(str(config.settings.store.path))}")
    return EXIT_OK


def _success_code_lines(config: Config) -> list[str]:
    """What counts as a healthy HTTP status, said aloud: our default (200-399) differs from
    EaseProbe's (0-499, where a 404 is healthy), and a moved-over file relies on the latter."""
    defaulted = 0
    own: Counter[str] = Counter()
    for spec in config.probes:
        describe = getattr(spec, "success_code_text", None)
        if describe is None:
            continue
        if "success_code" in spec.model_fields_set:
            own[describe()] += 1
        else:
            defaulted += 1
    lines = []
    if defaulted:
        lines.append(
            f"  http success codes: 200-399 for {defaulted} probe(s) by default "
            "(EaseProbe's default is 0-499; write success_code: [[0, 499]] for it)"
        )
    for codes, count in sorted(own.items()):
        lines.append(f"  http success codes: {codes} for {count} probe(s) (success_code)")
    return lines


def _cmd_run(config: Config, log_level: str | None, dry_notify: bool) -> int:
    from probe.app import App  # the app pulls in the store; `check` and `once` need neither

    log_settings = config.settings.log
    try:
        setup_logging(log_level or log_settings.level, log_settings.file, log_settings.format)
    except OSError as err:
        print(f"probe: log file {log_settings.file}: {err.strerror or err}", file=sys.stderr)
        return EXIT_STARTUP
    return asyncio.run(App(config, dry_notify=dry_notify).run())


async def _cmd_once(config: Config, fmt: str) -> int:
    from probe.app import build_probers
    from probe.probers.base import SharedResources

    setup_logging("warning")
    specs = config.enabled_probes
    resources = SharedResources()
    probers = build_probers(specs, resources)
    progress = _Progress(len(probers), sys.stderr)
    try:
        results = await run_all_once(
            probers, concurrency=config.settings.probe.concurrency, on_done=progress.tick
        )
    finally:
        progress.close()
        for prober in probers:
            await prober.aclose()
        await resources.aclose()
    if fmt == "json":
        print(json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False))
    else:
        _print_once_table(results, sys.stdout)
    return EXIT_DOWN if any(r.status is Status.DOWN for r in results) else EXIT_OK


class _Progress:
    """`[12/40] checked` on stderr while `probe once` runs, only when stderr is a terminal."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.done = 0
        self.stream = stream
        self.enabled = stream.isatty() and total > 1

    def tick(self, _result: Result) -> None:
        self.done += 1
        if self.enabled:
            self.stream.write(f"\r[{self.done}/{self.total}] checked")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _table(rows: list[list[str]], stream: TextIO) -> None:
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        stream.write("  ".join([*cells, row[-1]]).rstrip() + "\n")


def _print_once_table(results: list[Result], stream: TextIO) -> None:
    rows = [["STATUS", "NAME", "KIND", "LATENCY", "MESSAGE"]]
    for r in results:
        latency = "-" if r.latency is None else f"{r.latency * 1000:.1f}ms"
        rows.append([r.status.value.upper(), r.name, r.kind, latency, r.message])
    _table(rows, stream)
    down = sum(1 for r in results if r.status is Status.DOWN)
    stream.write(f"\n{len(results) - down} up, {down} down\n")


def _cmd_sla(config: Config, window: str, fmt: str) -> int:
    from probe.reports import sla_rows
    from probe.store import Store
    from probe.store.sla import SLAFigures, parse_window, window_bounds

    try:
        parse_window(window)
    except ValueError as err:
        print(f"probe sla: --window: {err}", file=sys.stderr)
        return EXIT_CONFIG
    tz = ZoneInfo(config.settings.timezone)
    start, end = window_bounds(window, datetime.now(UTC), tz)
    specs = config.probes
    path = config.settings.store.path
    figures: dict[str, SLAFigures] = {}
    if path.exists():
        store = Store.open(path, retention=config.settings.store.retention)
        try:
            figures = store.sla_many([s.name for s in specs], start, end)
        finally:
            store.close_sync()
    items = sla_rows(specs, figures, window)
    if fmt == "json":
        print(json.dumps(items, indent=2, ensure_ascii=False))
        return EXIT_OK
    rows = [["NAME", "KIND", "SLA", "UP", "DOWN", "CHECKS", "INCIDENTS", "P95"]]
    for item in items:
        rows.append(
            [
                item["name"],
                item["kind"],
                "no data" if item["sla"] is None else f"{item['sla']:.3f}%",
                format_duration(item["up_s"]),
                format_duration(item["down_s"]),
                str(item["checks"]),
                str(item["incidents"]),
                "-" if item["p95_ms"] is None else f"{item['p95_ms']:.0f}ms",
            ]
        )
    print(f"SLA over {window} ({_span(start, end, tz)})")
    _table(rows, sys.stdout)
    return EXIT_OK


async def _cmd_report(config: Config, output: str | None) -> int:
    """Render the status page once from the store and write it atomically."""
    from probe.store import Store
    from probe.web.data import ConfiguredProbe, StatusSource
    from probe.web.render import StatusPage, write_status_files

    settings = config.settings
    path = settings.store.path
    if not path.is_file():
        print(f"probe report: no store at {path} (run `probe run` first)", file=sys.stderr)
        return EXIT_STARTUP
    target = Path(output) if output is not None else settings.status.path
    store = Store.open(path, retention=settings.store.retention)
    try:
        now = time.time()
        source = StatusSource(
            store,
            [
                ConfiguredProbe(s.name, s.kind, s.endpoint(), dict(s.labels))
                for s in config.enabled_probes
            ],
            timezone=settings.timezone,
            clock=lambda: now,
        )
        page = StatusPage(source, title=settings.name, icon=settings.icon)
        written = await write_status_files(page, target)
    except sqlite3.Error as err:
        print(f"probe report: store {path}: {err}", file=sys.stderr)
        return EXIT_STARTUP
    except OSError as err:
        print(f"probe report: cannot write {target}: {err.strerror or err}", file=sys.stderr)
        return EXIT_STARTUP
    finally:
        store.close_sync()
    probes = len(config.enabled_probes)
    more = f" and {len(written) - 1} more page file(s)" if len(written) > 1 else ""
    print(f"wrote {target}{more} ({probes} probes)")
    return EXIT_OK


async def _cmd_notify_test(config: Config, only: str | None) -> int:
    """Send a sample down and recovery message through each notifier (or the one named),
    directly: no store, no retries. Prints what each service answered."""
    from probe.app import build_notifiers, notify_client, template_renderer
    from probe.notify.base import NotifyContext

    setup_logging("warning")
    specs = config.notifiers
    if only is not None:
        specs = [spec for spec in specs if spec.name == only]
        if not specs:
            names = ", ".join(spec.name for spec in config.notifiers) or "none"
            print(
                f"probe notify-test: no notifier named {only!r} (configured: {names})",
                file=sys.stderr,
            )
            return EXIT_CONFIG
    if not specs:
        print("probe notify-test: the config has no notifiers (notify: ...)", file=sys.stderr)
        return EXIT_CONFIG
    settings = config.settings
    http = notify_client(settings)
    context = NotifyContext(
        http=http,
        templates=template_renderer(settings),
        timeout=settings.notify.timeout,
        dry=settings.notify.dry,
    )
    try:
        notifiers = build_notifiers(specs, context)
        samples = _sample_notifications(time.time())
        reports = await asyncio.gather(*(_try_notifier(n, samples) for n in notifiers))
        for notifier in notifiers:
            await notifier.aclose()
    finally:
        await http.aclose()
    failed = 0
    for notifier, lines in zip(notifiers, reports, strict=True):
        print(f"{notifier.name} ({notifier.kind} → {notifier.spec.target()})")
        for line, ok in lines:
            print(f"  {line}")
            failed += not ok
    print(f"\n{len(notifiers)} notifier(s), {failed} message(s) failed")
    return EXIT_OK if failed == 0 else EXIT_DOWN


def _sample_notifications(now: float) -> list[Any]:
    from probe.notify.base import Event, Notification

    common: dict[str, Any] = {
        "probe": "notify-test",
        "kind": "http",
        "endpoint": "(a sample endpoint)",
        "outage_start": now - 125.0,
        "labels": {"test": "true"},
    }
    return [
        Notification(
            event=Event.DOWN,
            time=now - 125.0,
            status="down",
            message="a test message from probe notify-test: nothing is down",
            position=1,
            **common,
        ),
        Notification(
            event=Event.RECOVERY,
            time=now,
            status="up",
            message="a test message from probe notify-test: nothing was down",
            duration=125.0,
            **common,
        ),
    ]


async def _try_notifier(notifier: Any, samples: list[Any]) -> list[tuple[str, bool]]:
    """One line per sample: `down: sent`, `recovery: failed: <the service's error>`."""
    from probe.notify.base import DeliveryError
    from probe.notify.dispatch import show_payload

    lines: list[tuple[str, bool]] = []
    for sample in samples:
        event = sample.event.value
        try:
            payload = notifier.render(sample)
        except Exception as exc:
            lines.append((f"{event}: failed: cannot render the message: {exc}", False))
            continue
        if notifier.dry:
            lines.append((f"{event}: dry run, not sent: {show_payload(payload)}", True))
            continue
        try:
            # Notifiers bound their own requests; this bounds one that would not.
            async with asyncio.timeout(notifier.timeout + 5):
                await notifier.send(payload)
        except DeliveryError as exc:
            lines.append((f"{event}: failed: {exc.message}", False))
        except TimeoutError:
            lines.append((f"{event}: failed: no answer within {notifier.timeout:g}s", False))
        except Exception as exc:
            lines.append((f"{event}: failed: unexpected {type(exc).__name__}", False))
        else:
            lines.append((f"{event}: sent", True))
    return lines


def _span(start: float, end: float, tz: ZoneInfo) -> str:
    def fmt(t: float) -> str:
        return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M %Z")

    return f"since the first record, to {fmt(end)}" if start <= 0 else f"{fmt(start)} to {fmt(end)}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

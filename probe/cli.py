"""The `probe` command: parses the arguments, calls one function of the application layer
(probe.actions) per command, prints what it returns and maps errors to exit codes
(docs/ARCHITECTURE.md).

Exit codes: 0 ok (for `once`: none down; for `notify-test`: every message accepted), 1 some
probe down (`once`) or some notifier failed (`notify-test`), 2 bad config or usage, 3 start-up
failure (store unusable, port taken). No traceback reaches the user for any input.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from probe import __version__, actions, eventloop
from probe.assembly import load_config
from probe.config import Config, find_config_path
from probe.core.result import Result, Status
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
    parser.add_argument(
        "--version",
        action="version",
        version=f"probe {__version__} (Python {platform.python_version()}, event loop"
        f" {eventloop.loop_name()})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c",
            "--config",
            metavar="FILE",
            help="config file or folder of them (default: $PROBE_CONFIG, then probes.yaml)",
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
    command = args.command
    try:
        if command == "check":
            return _cmd_check(config)
        if command == "once":
            return _cmd_once(config, args.format)
        if command == "sla":
            return _cmd_sla(config, args.window, args.format)
        if command == "report":
            return _cmd_report(config, args.output)
        if command == "notify-test":
            return _cmd_notify_test(config, args.notifier)
        return _cmd_run(config, args.log_level, args.dry_notify)
    except actions.RequestError as err:
        print(f"probe {command}: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except actions.UnavailableError as err:
        print(f"probe {command}: {err}", file=sys.stderr)
        return EXIT_STARTUP
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
    from probe.assembly.schema import config_schema

    print(json.dumps(config_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK


def _cmd_check(config: Config) -> int:
    summary = actions.check_summary(config)
    by_kind = _counts(summary.probe_kinds)
    notifier_kinds = _counts(summary.notifier_kinds)
    print(f"{escaped(str(summary.path))}: OK")
    for name, probes, notifiers in summary.files:  # a folder: its files, then the totals
        print(f"  {escaped(name)}: {_plural(probes, 'probe')}, {_plural(notifiers, 'notifier')}")
    print(f"  probes: {summary.probes}" + (f" ({by_kind})" if by_kind else ""))
    if summary.disabled:
        print(f"  disabled: {summary.disabled}")
    print(f"  notifiers: {summary.notifiers}" + (f" ({notifier_kinds})" if notifier_kinds else ""))
    # Our default healthy codes (200-399) differ from EaseProbe's (0-499, where a 404 is
    # healthy): said aloud, since a moved-over file may rely on the latter.
    if summary.http_default_codes:
        print(
            f"  http success codes: 200-399 for {summary.http_default_codes} probe(s) by default "
            "(EaseProbe's default is 0-499; write success_code: [[0, 499]] for it)"
        )
    for codes, count in summary.http_own_codes.items():
        print(f"  http success codes: {codes} for {count} probe(s) (success_code)")
    print(f"  store: {escaped(str(summary.store))}")
    if summary.status_problem is not None:
        # The file system, not the config: `run` refuses it at start unless it is put right.
        print(f"warning: status page: {escaped(summary.status_problem)}", file=sys.stderr)
    return EXIT_OK


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _counts(by_kind: dict[str, int]) -> str:
    return ", ".join(f"{kind}: {count}" for kind, count in by_kind.items())


def _cmd_run(config: Config, log_level: str | None, dry_notify: bool) -> int:
    log_settings = config.settings.log
    try:
        setup_logging(log_level or log_settings.level, log_settings.file, log_settings.format)
    except OSError as err:
        print(f"probe: log file {log_settings.file}: {err.strerror or err}", file=sys.stderr)
        return EXIT_STARTUP
    return eventloop.run(actions.run(config, dry_notify=dry_notify))


def _cmd_once(config: Config, fmt: str) -> int:
    setup_logging("warning")
    progress = _Progress(len(config.enabled_probes), sys.stderr)
    try:
        results = eventloop.run(actions.check_once(config, on_done=progress.tick))
    finally:
        progress.close()
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
    up = sum(1 for r in results if r.status is Status.UP)
    # Unknown: a push probe no job has called yet (probe once reads it from the store).
    unknown = f", {len(results) - up - down} unknown" if len(results) > up + down else ""
    stream.write(f"\n{up} up, {down} down{unknown}\n")


def _cmd_sla(config: Config, window: str, fmt: str) -> int:
    try:
        table = actions.sla_table(config, window)
    except actions.RequestError as err:  # the one request sla_table refuses: the window
        print(f"probe sla: --window: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if fmt == "json":
        print(json.dumps(table.rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    rows = [["NAME", "KIND", "SLA", "UP", "DOWN", "CHECKS", "INCIDENTS", "P95"]]
    for item in table.rows:
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
    print(f"SLA over {table.window} ({_span(table.start, table.end, table.timezone)})")
    _table(rows, sys.stdout)
    return EXIT_OK


def _span(start: float, end: float, tz: ZoneInfo) -> str:
    def fmt(t: float) -> str:
        return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M %Z")

    return f"since the first record, to {fmt(end)}" if start <= 0 else f"{fmt(start)} to {fmt(end)}"


def _cmd_report(config: Config, output: str | None) -> int:
    report = eventloop.run(actions.write_report(config, None if output is None else Path(output)))
    more = f" and {len(report.files) - 1} more page file(s)" if len(report.files) > 1 else ""
    print(f"wrote {report.target}{more} ({report.probes} probes)")
    return EXIT_OK


def _cmd_notify_test(config: Config, only: str | None) -> int:
    """Prints what each service answered to the sample messages."""
    setup_logging("warning")
    trials = eventloop.run(actions.notify_test(config, only))
    for trial in trials:
        print(f"{trial.name} ({trial.kind} → {trial.target})")
        for delivery in trial.deliveries:
            print(f"  {delivery.event}: {delivery.said}")
    failed = sum(trial.failed for trial in trials)
    print(f"\n{len(trials)} notifier(s), {failed} message(s) failed")
    return EXIT_OK if failed == 0 else EXIT_DOWN


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

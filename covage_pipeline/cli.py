"""The `covage` command line: the emulator today, the pipeline's commands as they land.

Heavy libraries (dlt, dbt, dagster) are imported inside the commands that need them, so
`covage --help` and the emulator start fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from .settings import Settings


def _flag_type(self, ctx) -> str | None:
    """Typer 0.29 labels every option with its type, flags too (`--help <bool>`), though a flag
    takes no value; no setting turns that off, so flags show none here."""
    return None if self.is_flag else _option_type(self, ctx)


_option_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type

app = typer.Typer(
    help="covage-pipeline: the Covage (Kosc) events feed, kept in step in your warehouse.",
    no_args_is_help=True,
    # markdown: a docstring's paragraphs reflow to the terminal (rich keeps its hard line breaks)
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,  # a traceback (--debug) never prints a token held in a variable
)
emulator_app = typer.Typer(
    help="A local emulator of the Covage events API (tests, demos, benchmarks).", no_args_is_help=True
)
app.add_typer(emulator_app, name="emulator")
# messages are not wrapped by rich: a command or a path in them stays whole when copied
console = Console(soft_wrap=True)

_DEBUG = {"on": False}


def _fail(exc: Exception, code: int = 1):
    """Says what went wrong in the words of `exc`; the traceback only with --debug."""
    if _DEBUG["on"]:
        raise exc
    console.print(f"[red]{escape(str(exc))}[/]")  # its text as it is: `[sources.covage]` is no markup
    raise typer.Exit(code) from None


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error (for a bug report).")
    ] = False,
) -> None:
    _DEBUG["on"] = debug or os.environ.get("COVAGE_DEBUG", "") not in ("", "0")


def _now_utc(hours_ago: float = 0) -> datetime:
    """The emulator's default first instant: the wall clock (to the minute), so that its newest
    events are as recent as a live API's and freshness checks read true."""
    now = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)
    return now - timedelta(hours=hours_ago)


def _emulator_config(
    seed: int,
    orders: int,
    history_days: float,
    start: datetime | None,
    speed: float,
    token: str,
    extra_tokens: list[str],
    max_page_size: int,
    settings: list[str],
):
    from .emulator import EmulatorConfig

    tokens = {token: "admin"}
    for item in extra_tokens:
        tok, sep, group = item.partition(":")
        if not sep or not tok or not group:
            raise typer.BadParameter(f"--extra-token takes TOKEN:GROUP, got {item!r}")
        tokens[tok] = group
    config = EmulatorConfig(
        seed=seed,
        orders=orders,
        history_days=history_days,
        start=start or _now_utc(),
        speed=speed,
        tokens=tokens,
        max_page_size=max_page_size,
    )
    fields = {f.name: f for f in dataclasses.fields(config)}
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep or name not in fields or name in ("tokens", "faults", "start"):
            raise typer.BadParameter(f"--set takes NAME=VALUE with NAME a numeric or boolean setting, got {item!r}")
        current = getattr(config, name)
        caster = type(current) if current is not None else float
        if caster is bool:
            setattr(config, name, value.lower() in ("1", "true", "yes", "on"))
        else:
            setattr(config, name, caster(value))
    return config


@emulator_app.command("serve")
def emulator_serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (keep it on loopback).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    seed: Annotated[int, typer.Option(help="Same seed and start, same data.")] = 42,
    orders: Annotated[int, typer.Option(help="Orders submitted during the history before --start.")] = 2000,
    history_days: Annotated[float, typer.Option(help="Length of that history, in days.")] = 180.0,
    start: Annotated[
        datetime | None,
        typer.Option(
            help="The emulator clock's first instant (UTC, naive). Default: now; give one for the same data twice."
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option(help="Emulated seconds per real second (0 freezes the clock; 60 = a minute a second).")
    ] = 1.0,
    token: Annotated[
        str, typer.Option(envvar="COVAGE_API_TOKEN", help="Token of the 'admin' group.", show_default=False)
    ] = "emulator-token",
    extra_token: Annotated[
        list[str], typer.Option("--extra-token", help="More tokens, as TOKEN:GROUP (e.g. ro-token:readonly).")
    ] = [],  # noqa: B006 - typer needs a literal default
    max_page_size: Annotated[int, typer.Option(help="Largest page the API accepts.")] = 1000,
    settings: Annotated[
        list[str],
        typer.Option(
            "--set", help="Any other emulator setting as NAME=VALUE (e.g. reject_rate=0.2, late_window_s=120)."
        ),
    ] = [],  # noqa: B006
    faults: Annotated[
        str | None,
        typer.Option(
            help='Fault injection as JSON, e.g. \'{"error_rate": 0.1, "drop_rate": 0.05}\' '
            "(switchable later: POST /_emulator/faults)."
        ),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(
            help="A JSON file holding a list of API-shaped events to serve as they are (a captured feed, "
            "a hand-written log); with --orders 0 they are the only events.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the emulated API on HOST:PORT until Ctrl-C.

    Admin calls (no token, loopback only): GET /_emulator/status, POST /_emulator/advance?seconds=N,
    GET /_emulator/ground-truth, GET /_emulator/orders, GET|POST /_emulator/faults.
    """
    from .emulator import serve

    config = _emulator_config(seed, orders, history_days, start, speed, token, extra_token, max_page_size, settings)
    if faults:
        from .emulator import FaultConfig

        try:
            config.faults = FaultConfig.from_dict(json.loads(faults))
        except (ValueError, TypeError) as exc:
            raise typer.BadParameter(f"--faults: {exc}") from exc
    console.print(
        f"[bold]Covage emulator[/] on http://{host}:{port}  (seed {seed}, {orders} orders, clock from {config.start})"
    )
    events = json.loads(replay.read_text()) if replay else None
    if events is not None and not isinstance(events, list):
        raise typer.BadParameter("--replay: the file must hold a JSON list of events")
    serve(config, host, port, events)


@emulator_app.command("summary")
def emulator_summary(
    url: Annotated[
        str, typer.Option(envvar="COVAGE_API_URL", help="Base URL of a running emulator.")
    ] = "http://127.0.0.1:8765",
) -> None:
    """Print what a running emulator serves (its clock, orders by kind, events by type)."""
    try:
        status = httpx.get(f"{url.rstrip('/')}/_emulator/status", timeout=30).json()
    except httpx.HTTPError as exc:
        console.print(f"[red]No emulator answers at {url}[/]: {exc}. Start one with `covage emulator serve`.")
        raise typer.Exit(1) from exc
    print_emulator_summary(status, url)


def print_emulator_summary(status: dict, url: str) -> None:
    console.print(
        f"[bold]Emulator at {url}[/]: clock {status['now']}, {status['events_visible']:,} events visible "
        f"({status['first_creation_date']} .. {status['last_creation_date']}), {status['orders']:,} orders"
    )
    kinds = Table(title="Orders by kind")
    kinds.add_column("kind")
    kinds.add_column("orders", justify="right")
    for kind, n in sorted(status["orders_by_kind"].items()):
        kinds.add_row(kind, f"{n:,}")
    console.print(kinds)
    types = Table(title="Events by type")
    types.add_column("type")
    types.add_column("events", justify="right")
    for type_, n in status["events_by_type"].items():
        types.add_row(type_, f"{n:,}")
    console.print(types)


def _settings(**overrides):
    from .settings import load_settings

    try:
        return load_settings(**overrides)
    except ValueError as exc:
        console.print(f"[red]Configuration error:[/] {exc}")
        raise typer.Exit(2) from None


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    from .timestamps import parse_loose

    parsed = parse_loose(value if "T" in value or " " in value else f"{value}T00:00:00")
    if parsed is None:
        raise typer.BadParameter(f"--since takes a date or datetime like 2026-01-31 or 2026-01-31T12:00, not {value!r}")
    return parsed


def run_ingest(
    settings, *, full_refresh: bool = False, since: datetime | None = None, object_type=None, object_uuid=None
):
    """Runs an ingestion with a live progress line; returns the summary."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .pipeline import ingest

    with (
        Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as progress,
        _shown(progress.console),
    ):
        task = progress.add_task("Ingesting from the API...", total=None)

        def on_page(stats) -> None:
            progress.update(
                task,
                description=f"{stats.pages:,} pages, {stats.received:,} events, {stats.events_per_s:,.0f} events/s",
            )

        return ingest(
            settings,
            full_refresh=full_refresh,
            since=since,
            object_type=object_type,
            object_uuid=object_uuid,
            on_page=on_page,
            on_wait=progress.console.print,
        )


@contextlib.contextmanager
def _shown(shown_on: Console):
    """The package's warnings (a request retried, and why) on screen above the progress line, as
    well as in the log."""
    import logging

    class OnScreen(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            shown_on.print(f"[yellow]{escape(record.getMessage())}[/]")

    handler = OnScreen(logging.WARNING)
    package = logging.getLogger("covage_pipeline")
    package.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)


def print_ingest_summary(summary) -> None:
    d = summary.as_dict()
    table = Table(title="Ingestion summary", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    rows = [
        ("pages read", f"{d['pages']:,}"),
        ("events received", f"{d['received']:,}"),
        ("new", f"{d['new']:,}"),
        ("updated", f"{d['updated']:,}"),
        ("unchanged (read again)", f"{d['skipped_duplicates']:,}"),
        ("older versions ignored", f"{d['stale']:,}"),
        ("quarantined", f"{d['quarantined']:,}"),
        ("events in the warehouse", f"{d['events_in_table']:,}" if d["events_in_table"] is not None else "?"),
        ("time", f"{d['seconds']:.1f} s ({d['events_per_s'] or 0:,} events/s)"),
        ("cursor now", d["cursor"]["creation_date"] if d["cursor"] else "none"),
        ("warehouse", d["warehouse"]),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if d["quarantined"]:
        console.print("[yellow]Some items could not be loaded as events: see the events_quarantine table.[/]")
    if d["tie_overflow"]:
        console.print(
            f"[yellow]{d['tie_overflow']} tie(s) larger than the largest page: raise COVAGE_MAX_PAGE_SIZE "
            "if the API allows it, and rerun with --since to re-read them.[/]"
        )


@app.command("ingest")
def ingest_command(
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Drop the events tables and the cursor, then reload everything.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Re-read from this date (2026-01-31 or 2026-01-31T12:00) instead of the cursor.")
    ] = None,
    object_type: Annotated[str | None, typer.Option(help="Only this object type: order or service.")] = None,
    object_uuid: Annotated[
        str | None, typer.Option(help="Only this order or service (a backfill or audit; the cursor is untouched).")
    ] = None,
) -> None:
    """Bring the warehouse up to date with the API's events (incremental, resumable, no duplicates).

    Reads COVAGE_API_URL, COVAGE_API_TOKEN and COVAGE_DATA_DIR (or dlt's [sources.covage] config and secrets).
    Each run re-reads the last COVAGE_LOOKBACK_SECONDS (default 900) before the cursor, so events that
    tie on a timestamp or become visible late are never missed; re-read events are merged, not duplicated.
    """
    from .pipeline import IngestError

    settings = _settings()
    with stop_on_signal() as received:
        try:
            summary = run_ingest(
                settings,
                full_refresh=full_refresh,
                since=_parse_since(since),
                object_type=object_type,
                object_uuid=object_uuid,
            )
        except BaseException as exc:
            if received:
                _stopped(received[0])
            if isinstance(exc, IngestError):
                _fail(exc)
            raise
    if received:
        _stopped(received[0])
    print_ingest_summary(summary)


@contextlib.contextmanager
def stop_on_signal():
    """Ctrl-C (SIGINT) or SIGTERM stops an ingestion at once, with a non-zero exit and one line.

    dlt's own handling of both (`runtime.intercept_signals`) only notes the first signal during a
    load and forgets it when the step ends: a SIGTERM there was lost (a full summary, exit 0).
    Here the signal interrupts the run where it is; what was committed stays, and the next run
    repairs and resumes from there as after any crash. Yields the signals received."""
    import signal

    received: list[int] = []

    def on_signal(signum, frame) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    os.environ["RUNTIME__INTERCEPT_SIGNALS"] = "false"
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stopped(signum: int):
    import signal

    name = signal.Signals(signum).name
    console.print(
        f"[red]Stopped by {name}.[/] What was committed before stays in the warehouse; "
        "run `covage ingest` again to resume from there."
    )
    raise typer.Exit(128 + signum)


@app.command("build")
def build_command(
    select: Annotated[str | None, typer.Option(help="dbt node selection, e.g. stg_events+.")] = None,
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh",
            help="Rebuild every incremental model (stg_events, the per-order tables, the past forecasts) "
            "from all events, and test every row, not only what the new loads changed: after upgrading "
            "covage-pipeline, so that a fix in the models reaches the events already built (the nightly "
            "Dagster job does it too).",
        ),
    ] = False,
) -> None:
    """Run `dbt build` (models, then their tests) on the warehouse: the SQL project in sql/.

    Then, on DuckDB, publish the analysts' copy of the marts (`covage sql` reads it).
    """
    settings = _settings()
    if settings.destination == "duckdb" and not settings.duckdb_path.exists():
        console.print(
            f"[red]No warehouse at {settings.duckdb_path}: run `covage ingest` first.[/]{settings.demo_hint()}"
        )
        raise typer.Exit(1)
    from .locking import WarehouseBusy

    try:
        build_and_publish(settings, select, full_refresh=full_refresh)
    except WarehouseBusy as exc:
        _fail(exc)


def build_and_publish(settings: Settings, select: str | None = None, *, full_refresh: bool = False) -> None:
    """`covage build`'s work (models.build_and_publish), told as it goes."""
    from .models import build_and_publish as run

    done = run(settings, select, full_refresh=full_refresh, on_wait=console.print)
    result = done.build
    detail = ", ".join(f"{n} {status}" for status, n in sorted(done.counts.items()))
    console.print(
        f"dbt build: {done.passed} of {len(result.statuses)} models and tests passed ({detail}) "
        f"in {done.build_seconds:.1f} s"
    )
    if not result.success:
        for node, status in result.failures.items():
            console.print(f"[red]{status}: {node}[/]")
        console.print(f"[red]{result.error}[/]")
        raise typer.Exit(1)
    if done.published is not None:
        from .publish import analysts_path

        console.print(
            f"Analysts' copy: {len(done.published)} marts published to {analysts_path(settings)} "
            f"in {done.publish_seconds:.1f} s (`covage sql` and the notebooks read it)."
        )


def print_headlines(settings) -> None:
    from rich.table import Table

    from .headlines import headline_figures

    table = Table(title=f"Headline figures ({settings.warehouse_name})", show_lines=False)
    table.add_column("", style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    previous = None
    for figure in headline_figures(settings):
        table.add_row(figure.section if figure.section != previous else "", figure.label, figure.value)
        previous = figure.section
    console.print(table)
    monthly = "lifecycle_stats, rejection_stats, saturation_stats, appointment_stats, service_base_monthly"
    if settings.destination in ("duckdb",):  # `covage sql` reads the analysts' copy: schema marts
        where = f'`covage sql "select * from marts.delivery_stats"` (schema {settings.marts_schema} in the warehouse)'
    else:
        where = f"`select * from {settings.marts_schema}.delivery_stats` in your warehouse"
    console.print(f"Every figure comes from a mart: e.g. {where}. Monthly detail: {monthly}.")


@app.command("headlines")
def headlines_command() -> None:
    """Print the headline figures of the marts (lead times, rejections, saturation, backlog...).

    Run `covage build` first: the figures are read from the marts it builds.
    """
    settings = _settings()
    try:
        print_headlines(settings)
    except Exception as exc:  # no marts yet, most often
        console.print(f"[red]Could not read the marts: {type(exc).__name__}: {exc}[/]")
        console.print("Build them first: `covage ingest` then `covage build`.")
        raise typer.Exit(1) from None


@app.command("sql")
def sql_command(
    query: Annotated[
        str | None, typer.Argument(help="One SQL statement to run; without it, an interactive shell.")
    ] = None,
    max_rows: Annotated[int, typer.Option(help="Rows shown at most.")] = 50,
) -> None:
    """SQL on the analysts' copy of the marts (read-only; tables in schema `marts`).

    The copy is replaced after each successful build, so a query never waits on the pipeline and
    never blocks it. Examples: `covage sql "select * from marts.delivery_stats"`; `covage sql`
    alone opens a shell with line editing and history (the arrow keys), statements ending with
    `;`, and `.tables`, `.schema [table]`, `.mode box|csv|line|json`, `.help`, `.quit`.
    """
    import duckdb

    from .publish import analysts_path
    from .sql_shell import SqlShell

    settings = _settings()
    path = analysts_path(settings)
    if not path.exists():
        console.print(
            f"[red]No analysts' copy at {path}: run `covage build` (or the Dagster job) first.[/]{settings.demo_hint()}"
        )
        raise typer.Exit(1)
    con = duckdb.connect(str(path), read_only=True)
    con.execute("use marts")
    shell = SqlShell(con, max_rows=max_rows, history=settings.data_dir / ".covage_sql_history")
    if query is not None:
        ok = shell.run(query)
        con.close()
        raise typer.Exit(0 if ok else 1)
    console.print(f"Marts of {path} (read-only). End statements with `;`; `.help` lists the commands.")
    shell.loop()
    con.close()


reports_app = typer.Typer(
    help="Intervention reports (CRI): archive every file before its 30-minute link dies.", no_args_is_help=True
)
app.add_typer(reports_app, name="reports")


@reports_app.command("fetch")
def reports_fetch(
    retry_failed: Annotated[bool, typer.Option(help="Try again the files whose every attempt failed.")] = False,
    recheck: Annotated[
        bool, typer.Option(help="Download every file again; keep those that changed at the source beside the old.")
    ] = False,
) -> None:
    """Download the files of every new (or changed) CRI event into the archive (COVAGE_REPORTS_URL:
    a folder or any fsspec URL; default <data dir>/reports) and record each in intervention_reports.

    Links are refreshed (the event displayed again) when the blob store answers 403. A rerun
    archives nothing twice; a file changed at the source is kept beside the old one.
    """
    from .reports import archive_reports

    settings = _settings()
    console.print(f"Archiving intervention reports into {settings.reports_location}...")
    try:
        stats = archive_reports(settings, retry_failed=retry_failed, recheck=recheck, on_wait=console.print)
    except Exception as exc:  # the message never holds a token: links are stripped before use in errors
        console.print(f"[red]{type(exc).__name__}: {escape(str(exc))}[/]")
        raise typer.Exit(1) from None
    console.print(
        f"{stats.events} CRI events examined: {stats.archived} files archived, "
        f"{stats.unchanged} already archived (same checksum), {stats.failed} failed."
    )
    for reason, n in sorted(stats.reasons.items()):
        console.print(f"[yellow]  {n} x {reason}[/]")
    if stats.failed:
        console.print("Failures are recorded with their reason: `covage reports list`; retry with --retry-failed.")


@reports_app.command("list")
def reports_list(
    order: Annotated[str | None, typer.Option(help="Only this order's reports (order_uuid).")] = None,
) -> None:
    """List archived and failed report files, from the warehouse's intervention_reports table."""
    from rich.table import Table

    from .reports import list_reports

    settings = _settings()
    try:
        rows = list_reports(settings, order)
    except Exception:
        console.print("[red]No intervention_reports yet: run `covage reports fetch` first.[/]")
        raise typer.Exit(1) from None
    table = Table(title=f"Intervention reports ({len(rows)} files)")
    for column in ("order", "event", "label", "status", "bytes", "sha256", "path or reason"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["order_uuid"],
            r["event_uuid"],
            r["file_label"],
            r["status"],
            str(r["size_bytes"] or ""),
            (r["sha256"] or "")[:12],
            r["archived_path"] or r["reason"] or "",
        )
    console.print(table)


events_app = typer.Typer(help="Single events, straight from the API.", no_args_is_help=True)
app.add_typer(events_app, name="events")


def _api_client(settings, retry: bool = True):
    from .client import client_for

    return client_for(settings, retry=retry)


@events_app.command("get")
def events_get(
    event_uuid: Annotated[str, typer.Argument(help="The event's identifier (event_uuid).")],
    show_links: Annotated[
        bool, typer.Option("--show-links", help="Print CRI links with their (30-minute) tokens.")
    ] = False,
) -> None:
    """Print one event as the API returns it now (GET /api/events/{uuid}/)."""
    import orjson

    from .client import CovageAPIError, get_event
    from .records import strip_url_tokens

    settings = _settings()
    try:
        event = get_event(_api_client(settings), event_uuid)
    except CovageAPIError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    except Exception as exc:  # connection refused, retries exhausted
        console.print(f"[red]Could not reach the API at {settings.api_url}: {type(exc).__name__}[/]")
        raise typer.Exit(1) from None
    if not show_links:
        event = strip_url_tokens(event)
    console.print_json(orjson.dumps(event).decode())


@app.command("history")
def history(
    key: Annotated[str, typer.Argument(help="An order's or a service's uuid, or an order reference (O260728_00276).")],
    live: Annotated[
        bool, typer.Option("--live", help="Ask the API for the object's events now instead of the warehouse.")
    ] = False,
) -> None:
    """The story of one order or service, step by step, from the warehouse's marts.

    Steps follow business time (event_date, else creation_date); each says what happened in
    words. With --live, the events the API lists for the object now (a uuid only), in the order it
    lists them, each with what its type means.
    """
    from .warehouse import WarehouseMissing, forecasts, timeline

    settings = _settings()
    try:
        rows = _live_timeline(settings, key) if live else timeline(settings, key)
    except WarehouseMissing as exc:
        _fail(exc)
    if not rows:
        console.print(f"No events for {key}" + (" at the API." if live else " in the warehouse (try --live)."))
        raise typer.Exit(1)
    # an order and the service it created (asked by the order's reference): one timeline, each
    # event labelled with its object
    kinds = {r["object_uuid"]: r.get("object_type") or "order" for r in rows}
    ref = next((r["kosc_order_ref"] for r in rows if r.get("kosc_order_ref")), None)
    for obj, kind in sorted(kinds.items(), key=lambda item: (item[1] != "order", item[0])):
        label = f"{kind} {obj}" + (f" (ref {ref})" if kind == "order" and ref else "")
        if kind == "service" and "order" in kinds.values():
            label += ", created by that order"
        console.print(f"[bold]{label}[/]")
    several = len(kinds) > 1
    if several:
        rows = sorted(rows, key=lambda r: (r["business_time"], kinds[r["object_uuid"]] != "order", r["step"]))
    source = "the API, as listed" if live else "the warehouse"
    table = Table(title=f"{_count(len(rows), 'event')} ({source})", expand=False)
    table.add_column("#", justify="right")
    table.add_column("business time" if not live else "created", no_wrap=True)
    if several:
        table.add_column("of")
    table.add_column("event", overflow="fold")
    table.add_column("what happened", overflow="fold")
    for position, r in enumerate(rows, start=1):
        when = f"{r['business_time']:%Y-%m-%d %H:%M}" + (" *" if r.get("is_event_date_fallback") else "")
        what = (r["summary"] or "") + f"\n[dim]{r['event_uuid']}[/]"
        of = [kinds[r["object_uuid"]]] if several else []
        table.add_row(str(position), when, *of, r["event_type"].removeprefix("order-"), what)
    console.print(table)
    if any(r.get("is_event_date_fallback") for r in rows):
        console.print("* event_date unreadable: creation_date shown instead")
    if not live:
        for forecast in forecasts(settings, sorted({r["object_uuid"] for r in rows})):
            console.print(_forecast_line(forecast))


def _forecast_line(f: dict) -> str:
    """An open order's delivery forecast, in a sentence (the mart open_order_forecast)."""
    where = (f"{f['kind']}, " if f.get("kind") else "") + f"{f['stage']} for {f['days_in_stage']:.1f} days"
    if f["p50_completed_at"] is None:
        return f"Open, {where}: too few comparable orders for a forecast."
    p90 = f"{f['p90_completed_at']:%Y-%m-%d}" if f["p90_completed_at"] is not None else "beyond the data"
    basis = f"{f['compared_with']}, {_count(f['comparable_orders'], 'comparable order')}"
    if f["uses_appointment"]:
        basis += f"; not before its appointment on {f['appointment_start']:%Y-%m-%d}"
    return (
        f"Forecast: delivered by {f['p50_completed_at']:%Y-%m-%d} (1 in 2), by {p90} (9 in 10); "
        f"{where} ({basis})"
        + (
            f"; {100 * f['probability_not_completed']:.0f} % of such orders ended otherwise"
            if f["probability_not_completed"]
            else ""
        )
        + "."
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _live_timeline(settings, object_uuid: str) -> list[dict]:
    """The object's events as the API lists them now, through the ingestion's own paging."""
    from .catalogue import event_types
    from .client import client_for
    from .cursor import Start
    from .paginator import SearchAfterPaginator, fetch_pages
    from .records import build_page

    paginator = SearchAfterPaginator(Start(None, None), settings.page_size, settings.max_page_size)
    params = {"sort": "creation_date", "direction": "asc", "object_uuid": object_uuid}
    catalogue = event_types(settings.dbt_project)
    seen: dict[str, dict] = {}
    for items, _ in fetch_pages(client_for(settings), params, paginator):
        for row in build_page(items).table.to_pylist():
            seen[row["event_uuid"]] = row
    rows = []
    for step, row in enumerate(seen.values(), start=1):
        known = catalogue.get(row["type"])
        rows.append(
            {
                "object_uuid": row["object_uuid"],
                "step": step,
                "business_time": row["creation_date"],
                "event_type": row["type"],
                "summary": known.description if known else "a type the catalogue does not know",
                "event_uuid": row["event_uuid"],
            }
        )
    return rows


@app.command("order-info")
def order_info(
    order_uuid: Annotated[str, typer.Argument(help="The order to write to.")],
    message: Annotated[str, typer.Argument(help="The message text.")],
    stop_deferred: Annotated[
        bool, typer.Option("--stop-deferred", help="Ask the operator to end the order's deferral.")
    ] = False,
) -> None:
    """Post an order-info message on an order (token of the 'admin' or 'delivery' group).

    The API accepts one message every 5 minutes per order: the command refuses locally when the
    warehouse shows a message less than 5 minutes old, and reports the API's own throttling plainly.
    """
    from datetime import timedelta

    from .client import post_info
    from .warehouse import last_info_message

    settings = _settings()
    last = last_info_message(settings, order_uuid)
    if last is not None:
        wait = last + timedelta(minutes=5) - datetime.now(UTC).replace(tzinfo=None)
        if wait.total_seconds() > 0:
            console.print(
                f"[yellow]Not sent:[/] the last message on {order_uuid} was posted at {last:%Y-%m-%d %H:%M:%S} UTC; "
                f"the API accepts one every 5 minutes. Try again in {int(wait.total_seconds()) + 1} s."
            )
            raise typer.Exit(3)
    response = post_info(_api_client(settings, retry=False), order_uuid, message, True if stop_deferred else None)
    if response.ok:  # the reference does not say which 2xx: any is success
        created = ""
        with contextlib.suppress(ValueError, AttributeError):
            created = f"event {response.json().get('event_uuid')} "
        console.print(f"Posted: {created}on order {order_uuid}.")
        return
    if response.status_code == 429:
        console.print(
            f"[yellow]Not sent: the API throttled the message (one every 5 minutes per order). "
            f"Retry in {response.headers.get('Retry-After', '?')} s.[/]"
        )
        raise typer.Exit(3)
    detail = ""
    with contextlib.suppress(ValueError, AttributeError):
        detail = response.json().get("detail", "")
    hints = {
        401: "Set COVAGE_API_TOKEN.",
        403: "Your token must belong to the 'admin' or 'delivery' group.",
        404: "No such order at the API.",
    }
    console.print(f"[red]Not sent ({response.status_code}): {detail} {hints.get(response.status_code, '')}[/]")
    raise typer.Exit(1)


@app.command("dagster")
def dagster_command(
    host: Annotated[str, typer.Option(help="Interface the UI listens on (keep it on loopback).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port of the UI.")] = 3000,
    recycle_minutes: Annotated[
        float | None,
        typer.Option(
            help="Start a fresh code server and daemon this often, when no run is queued or running "
            "(default COVAGE_CODE_SERVER_RECYCLE_MINUTES, 30; 0: never).",
            show_default=False,
            min=0,
        ),
    ] = None,
) -> None:
    """Start Dagster on HOST:PORT: the UI, the daemon that runs schedules and sensors, and the code
    server that loads the definitions, each its own process (as Dagster deploys them).

    The instance lives in DAGSTER_HOME, default <data dir>/dagster_home, with the project's
    dagster.yaml. Ctrl-C or SIGTERM stops every process it started, whether it runs in a
    terminal or in the background. Every RECYCLE_MINUTES, at a moment without runs, the code
    location is reloaded (the UI's "Reload") and the daemon restarted, so that their memory,
    which Dagster lets grow with each run and each hour, stays bounded over months.
    """
    import shutil
    import signal
    import threading

    from .code_server import recycle_code_server, webserver_url
    from .dagster_services import DagsterServices

    settings = _settings()
    every = settings.code_server_recycle_minutes if recycle_minutes is None else recycle_minutes
    home = Path(os.environ.get("DAGSTER_HOME") or settings.data_dir / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).resolve().parents[1] / "dagster_defs" / "dagster_home" / "dagster.yaml", home)
    url = webserver_url(host, port)
    stop, started = threading.Event(), threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()
        if not started.is_set():
            raise KeyboardInterrupt  # still starting: what started is stopped on the way out

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    console.print(f"Dagster on {url} (instance {home}); Ctrl-C stops it.")
    failed = None
    try:
        with DagsterServices(home, host, port) as services:
            started.set()
            if every > 0:
                threading.Thread(
                    target=recycle_code_server,
                    args=(url, every * 60, stop, console.print, services.daemon_stopped),
                    name="recycle-code-server",
                    daemon=True,
                ).start()
            while not stop.wait(1) and not (failed := services.exited()):
                pass
            stop.set()
    except KeyboardInterrupt:
        pass
    except RuntimeError as error:  # it did not start
        failed = str(error)
    if failed:
        console.print(f"[red]{failed}: the lines above say why; everything else was stopped.[/]")
        raise typer.Exit(1)


@app.command()
def demo(
    orders: Annotated[int, typer.Option(help="Orders in the emulator's history.")] = 2000,
    seed: Annotated[int, typer.Option(help="Emulator seed.")] = 42,
) -> None:
    """The main job on local data: start an emulator on loopback, backfill the warehouse from it,
    let a day pass on the emulator's clock, ingest again (incremental), build the dbt models,
    publish the analysts' copy (the notebooks' default) and print the headline figures.

    Writes under <COVAGE_DATA_DIR>/demo/, never in your real warehouse.
    """
    from .emulator import EmulatorConfig, running_emulator
    from .pipeline import IngestError

    base = _settings()
    token = "demo-token"
    # the demo lets a day pass on the emulator's clock: it starts a day ago and ends now
    config = EmulatorConfig(seed=seed, orders=orders, start=_now_utc(hours_ago=24), tokens={token: "admin"})
    console.print("Starting the emulator on loopback...")
    with running_emulator(config) as running:
        status = httpx.get(f"{running.url}/_emulator/status", timeout=60).json()
        print_emulator_summary(status, running.url)
        settings = dataclasses.replace(
            base, api_url=running.url, api_token=token, data_dir=base.demo_dir, auth_type="bearer"
        )
        try:
            console.rule("Backfill (full refresh)")
            print_ingest_summary(run_ingest(settings, full_refresh=True))
            running.store.advance(24 * 3600)
            console.rule("A day later on the emulator's clock: incremental run")
            print_ingest_summary(run_ingest(settings))
        except IngestError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    console.rule("dbt build (sql/)")
    build_and_publish(settings)
    print_headlines(settings)
    # (no `duckdb` command: PyPI's duckdb-cli stops at 1.5, older than the files written here)
    console.print(
        f"Demo warehouse: {settings.duckdb_path}. Explore it: "
        f"`COVAGE_DATA_DIR={settings.data_dir} .venv/bin/covage sql` "
        "(a SQL shell on the marts: `.tables`, `select * from marts.delivery_stats`), "
        f"or `COVAGE_DATA_DIR={settings.data_dir} .venv/bin/covage headlines`."
    )


class _WithoutTraceback(logging.Filter):
    """dlt logs a failed load job with its traceback; the command then says what happened and what
    to do in one message. The traceback is kept for --debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _DEBUG["on"]:
            return True
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        message = record.getMessage()
        if "Traceback (most recent call last)" in message:  # a traceback inside the message
            lines = [line for line in message.splitlines() if line.strip()]
            record.msg, record.args = f"{message.split('Traceback', 1)[0].rstrip()} {lines[-1].strip()}", ()
        return True


def main() -> None:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    logging.getLogger("dlt").addFilter(_WithoutTraceback())
    try:
        app(standalone_mode=True)
    except Exception as exc:  # anything no command explained: one line, the traceback on demand
        if _DEBUG["on"]:
            raise
        console.print(f"[red]{type(exc).__name__}: {escape(str(exc))}[/]")
        console.print("Run the command again with --debug (covage --debug ...) to see where it failed.")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()

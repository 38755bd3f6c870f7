"""The `covage` command line: the emulator today, the pipeline's commands as they land.

Heavy libraries (dlt, dbt, dagster) are imported inside the commands that need them, so
`covage --help` and the emulator start fast.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="covage-pipeline: the Covage (Kosc) events feed, kept in step in your warehouse.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
emulator_app = typer.Typer(
    help="A local emulator of the Covage events API (tests, demos, benchmarks).", no_args_is_help=True
)
app.add_typer(emulator_app, name="emulator")
console = Console()


def _today_utc() -> datetime:
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


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
        start=start or _today_utc(),
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
        datetime | None, typer.Option(help="The emulator clock's first instant (UTC, naive). Default: today 00:00.")
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
) -> None:
    """Serve the emulated API on HOST:PORT until Ctrl-C.

    Admin calls (no token, loopback only): GET /_emulator/status, POST /_emulator/advance?seconds=N,
    GET /_emulator/ground-truth, GET /_emulator/orders, GET|POST /_emulator/faults.
    """
    from .emulator import serve

    config = _emulator_config(seed, orders, history_days, start, speed, token, extra_token, max_page_size, settings)
    console.print(
        f"[bold]Covage emulator[/] on http://{host}:{port}  (seed {seed}, {orders} orders, clock from {config.start})"
    )
    serve(config, host, port)


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


@app.command()
def demo(
    orders: Annotated[int, typer.Option(help="Orders in the emulator's history.")] = 2000,
    seed: Annotated[int, typer.Option(help="Emulator seed.")] = 42,
) -> None:
    """The main job on local data: start an emulator on loopback and show what it serves."""
    from .emulator import EmulatorConfig, running_emulator

    config = EmulatorConfig(seed=seed, orders=orders, start=_today_utc())
    console.print("Starting the emulator on loopback...")
    with running_emulator(config) as running:
        status = httpx.get(f"{running.url}/_emulator/status", timeout=60).json()
        print_emulator_summary(status, running.url)
        spec = httpx.get(f"{running.url}/openapi.json", timeout=10).json()
        console.print(f"Contract: {running.url}/openapi.json ({len(spec['paths'])} paths).")


def main() -> None:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    app()


if __name__ == "__main__":
    main()

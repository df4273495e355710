"""``gputab prices``: the price table in effect and which GPU of this box matches which row."""

from __future__ import annotations

import click

from gputab.cli.context import AppContext, pass_ctx, print_json
from gputab.cost.pricing import PriceTable, match_model
from gputab.errors import BackendError


def _gpus_of_this_box(app: AppContext, table: PriceTable) -> tuple[list[dict], str | None]:
    """Each GPU with the price it gets; a machine without a driver still sees the table (with a note)."""
    try:
        with app.open_backend() as backend:
            snap = backend.poll()
    except BackendError as exc:
        return [], str(exc)
    out = []
    for g in snap.gpus:
        price = table.price_for(g.index, g.uuid, g.name)
        out.append(
            {
                "index": g.index,
                "uuid": g.uuid,
                "name": g.name,
                "matched_key": match_model(g.name),
                **{k: v for k, v in price.to_json().items()},
            }
        )
    return out, None


@click.command()
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON (schema_version, table_date, price_mode, rental_rate, default_rate_usd_per_hour, "
    "price_usd_per_kwh, pue, rows, gpus, note) instead of text; keys in docs/json.md.",
)
@pass_ctx
def prices(app: AppContext, as_json: bool) -> None:
    """Show the GPU price table in effect ($/GPU-hour, source, date) and the GPUs it prices here."""
    table = PriceTable.load(app.config.prices)
    gpus, note = _gpus_of_this_box(app, table)
    if as_json:
        print_json({**table.to_json(), "gpus": gpus, "note": note})
        return
    cfg = app.config.prices
    click.echo(
        f"Price table dated {table.table.get('table_date')}, mode {cfg.mode}, rental rate {cfg.rental_rate}."
        ' Override any figure in the config ([prices.models.KEY] or [prices.gpus."INDEX"]).'
    )
    click.echo(f"{'model':<11} {'mode':<7} {'$/h':>7} {'spot':>6}  source (date)")
    for r in table.rows():
        spot = "-" if r["spot"] is None else f"{r['spot']:.2f}"
        click.echo(
            f"{r['model_key']:<11} {r['mode']:<7} {r['rate_per_hour']:>7.3f} {spot:>6}  {r['source']} ({r['date']})"
        )
    click.echo("")
    if note:
        click.echo(f"GPUs of this machine: none read ({note})")
    for g in gpus:
        flag = "  UNKNOWN MODEL: default rate, set [prices.models] or [prices.gpus] to price it" if g["unknown"] else ""
        click.echo(
            f"GPU {g['index']}: {g['name']} -> {g['model_key'] or '(default)'} "
            f"{g['mode']} ${g['rate_per_hour']:.3f}/h{flag}"
        )


def register(cli: click.Group) -> None:
    cli.add_command(prices)

"""``gputab samples``: enter a job's samples and tokens after the fact (it never called ``gputab.report``)."""

from __future__ import annotations

import time

import click

from gputab.cli.context import AppContext, fail, pass_ctx, print_json


@click.command()
@click.argument("tag")
@click.option("--samples", type=click.IntRange(min=0), default=0, help="Samples (examples) the job processed.")
@click.option("--tokens", type=click.IntRange(min=0), default=0, help="Tokens the job processed.")
@click.option("--session", "session_ref", default=None,
              help="Session id or `last` [default: the newest session with job TAG].")
@click.option("--json", "as_json", is_flag=True, help="Print the job's updated figures as JSON.")
@pass_ctx
def samples(app: AppContext, tag: str, samples: int, tokens: int, session_ref: str | None, as_json: bool) -> None:
    """Add SAMPLES / TOKENS to job TAG of a session, so cost per sample and per token can be computed.

    For the session a recorder is writing right now, the counts go through the report spool and the recorder
    counts them at its next tick.
    """
    from gputab.attribution import validate_tag
    from gputab.report import new_file_name, spool_dir, write_spool_file
    from gputab.store import Store

    if not samples and not tokens:
        fail("give --samples N and/or --tokens N (at least one above 0)", code=2)
    try:
        tag = validate_tag(tag) if not tag.startswith("(") else tag
    except ValueError as exc:
        fail(f"invalid tag: {exc}", code=2)
    with Store.open(app.db_path, create=False, write=True) as store:
        live = store.live_session_id()
        if session_ref is not None:
            sid = store.resolve_session(session_ref)
        else:
            found = store.session_tags(tag)
            sid = found[0] if found else live
            if sid is None:
                fail(f"no session has a job {tag!r}; check the tag with `gputab show last`, or name the session "
                     f"with --session")
        if sid is not None and sid == live:
            doc = {"v": 1, "source": "cli", "host": "cli", "pid": None, "uid": None, "started": time.time(),
                   "updated": time.time(), "counts": {tag: [samples, tokens]}}
            try:
                write_spool_file(spool_dir(), new_file_name(), doc, sync=True)
            except OSError as exc:
                fail(f"cannot write to the report spool {spool_dir()}: {exc}; set GPUTAB_SPOOL to the recorder's "
                     f"spool directory")
            msg = f"sent to the running recorder (session {sid}); counted at its next tick"
            if as_json:
                print_json({"session": sid, "tag": tag, "samples": samples, "tokens": tokens, "pending": True})
            else:
                click.echo(f"{tag}: +{samples} samples, +{tokens} tokens {msg}")
            return
        job = store.add_samples(sid, tag, samples, tokens)
    if as_json:
        print_json({"session": sid, **job})
        return
    per = "-" if job["cost_per_sample_usd"] is None else f"${job['cost_per_sample_usd']:.6f}"
    click.echo(f"session {sid}, {tag}: {job['samples'] or 0:,} samples, {job['tokens'] or 0:,} tokens; "
               f"cost ${job['cost_usd']:.4f}, {per} per sample")


def register(cli: click.Group) -> None:
    cli.add_command(samples)

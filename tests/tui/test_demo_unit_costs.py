"""The demo's live view shows cost per 1k samples and per 1M tokens within its first minute (issue 23 item 3),
from the reports its jobs write to the demo's spool; and keys 5-9 say there is no such view."""

from __future__ import annotations

import pytest
from tui_support import advance, dialog_words, make_app

from gputab.tui import format as fmt
from gputab.tui.details_screen import DetailsScreen
from gputab.tui.widgets.jobs import JobsTable


async def test_the_live_view_shows_dollars_per_1k_samples_and_per_1m_tokens(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(200, 50)) as pilot:
        frame = await advance(app, clock, 30)
        await pilot.pause()
        jobs = {j.tag: j for j in frame.jobs}
        lora, serve = jobs["llama3-8b-lora"], jobs["mistral-7b-serve"]
        assert lora.samples and lora.cost_per_1k_samples_usd == pytest.approx(
            lora.cost_usd / lora.samples * 1000, rel=1e-9
        )
        assert serve.tokens and serve.cost_per_1m_tokens_usd == pytest.approx(
            serve.cost_usd / serve.tokens * 1e6, rel=1e-9
        )
        table = app.screen.query_one(JobsTable)
        assert table.get_cell("llama3-8b-lora", "per_1k").plain.startswith("$0.")
        assert table.get_cell("mistral-7b-serve", "per_1m").plain.startswith("$")
        assert table.get_cell("mistral-7b-serve", "per_1k").plain == "-"
        table.move_cursor(row=table.get_row_index("mistral-7b-serve"))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen)
        text = dialog_words(app)
        assert "$ per 1M tokens" in text
        # The demo's server counts prompt and generated tokens apart: the details say both, the total holds both.
        assert serve.prompt_tokens and serve.generated_tokens
        assert serve.prompt_tokens + serve.generated_tokens == serve.tokens
        kinds = f"prompt {fmt.count(serve.prompt_tokens)}, generated {fmt.count(serve.generated_tokens)}"
        assert f"{fmt.count(serve.tokens)} ({kinds})" in text


async def test_the_job_details_show_prompt_and_generated_tokens_at_80x24(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        frame = await advance(app, clock, 30)
        await pilot.pause()
        serve = next(j for j in frame.jobs if j.tag == "mistral-7b-serve")
        table = app.screen.query_one(JobsTable)
        table.move_cursor(row=table.get_row_index("mistral-7b-serve"))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen)
        text = dialog_words(app)
        assert f"prompt {fmt.count(serve.prompt_tokens)}, generated {fmt.count(serve.generated_tokens)}" in text


async def test_keys_5_to_9_say_there_is_no_such_view(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 2)
        mode = app.current_mode
        app.clear_notifications()
        await pilot.press("7")
        await pilot.pause()
        assert app.current_mode == mode
        assert any("no such view" in n.message for n in app._notifications)

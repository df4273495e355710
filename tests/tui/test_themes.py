"""Themes: Textual's theme system through the command palette, a light theme, and NO_COLOR honoured under any."""

from __future__ import annotations

import pytest
from textual.command import CommandPalette
from textual.filter import Monochrome, NoColor
from tui_support import advance, make_app

from gputab.tui.widgets.money import MoneyCharts


@pytest.mark.slow
async def test_command_palette_opens_and_offers_the_themes(demo_ctx, clock):
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 2)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"theme")
        await pilot.pause(0.3)
        await pilot.press("enter")  # "Theme: change the current theme" -> the list of themes
        await pilot.pause(0.3)
        await pilot.press(*"textual-light", "enter")
        await pilot.pause(0.3)
        assert app.theme == "textual-light" and not app.current_theme.dark


async def test_light_theme_keeps_no_color(demo_ctx, clock, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 3)
        app.theme = "textual-light"
        await pilot.pause()
        assert app.no_color and any(isinstance(f, (Monochrome, NoColor)) for f in app._filters)
        assert app.screen.query_one(MoneyCharts).display  # charts still drawn, in one colour


async def test_without_no_color_the_light_theme_has_colour(demo_ctx, clock, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    app = make_app(demo_ctx, clock)
    async with app.run_test(size=(120, 40)) as pilot:
        await advance(app, clock, 3)
        app.theme = "textual-light"
        await pilot.pause()
        assert not app.no_color and not any(isinstance(f, (Monochrome, NoColor)) for f in app._filters)

"""The live terminal app (Textual). The only package of gputab that imports textual.

Layout: ``app.py`` (App, factory, ``run_app``), one screen per module with its ``.tcss`` beside it, small widgets
in ``widgets/``, messages in ``messages.py``. The poll runs in ``poller.py`` (one thread, no textual) on a
``feed.py`` (recording or attached) that turns ticks into ``frame.py`` view models.
"""

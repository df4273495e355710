"""The live view's pipeline without textual: feeds (in memory or attached), the poll thread, frames, history."""

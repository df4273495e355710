"""Budgets: caps per tag and period, the recorder's keeper, opt-in enforcement, gputab run's own meter."""

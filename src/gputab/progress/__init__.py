"""Samples and tokens a job reports: the spool the recorder reads (gputab.report writes it)."""

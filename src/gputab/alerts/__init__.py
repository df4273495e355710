"""Alerts: the rules (pure), their record and wording, the recorder's observer, the alert command."""

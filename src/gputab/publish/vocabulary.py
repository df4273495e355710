"""The scripting vocabulary: every key gputab writes to ``--json``, CSV and Prometheus, with its unit, once.

The rule: the same quantity has the same key and unit everywhere. A key carries its unit as a suffix
(:data:`UNIT_SUFFIXES`: ``_usd``, ``_pct``, ``_bytes``, ``_joules``, ``_seconds``...); times are ISO 8601 UTC
strings (``2026-01-31T12:00:00Z``) and their keys end in ``_at`` (the filters ``since``/``until`` aside).
Utilization is always a percent (0-100, ``*_pct``), as NVML reports it. Every JSON document is an object with
``schema_version`` first.

Inside gputab, dicts keep the shorter names the store and the ledger have always used (``start``,
``avg_utilization`` as 0-1...); :func:`gputab.publish.document.public` turns one into the public shape at the edge, and every
``--json`` command and CSV layout goes through it, so this table and its renames are the one place that decides a
public name. ``docs/json.md`` is generated from :data:`KEYS` (``python -m gputab.publish.vocabulary_page > docs/json.md``, by
:mod:`gputab.publish.vocabulary_page`), and tests/test_vocabulary.py checks that every command's output uses only keys
listed here, with their unit and JSON type, and that the page is current.

Prometheus metric names follow Prometheus's own base-unit conventions (``_dollars``, ``_ratio`` for 0-1,
``_joules_total``); :data:`METRICS` lists each with the JSON key it mirrors.
"""

from __future__ import annotations

from dataclasses import dataclass

UNIT_SUFFIXES: dict[str, str] = {
    "_usd_per_hour": "US dollars per hour",
    "_usd_per_kwh": "US dollars per kWh",
    "_pct_per_hour": "percentage points per hour",
    "_usd": "US dollars",
    "_pct": "percent (0-100)",
    "_bytes_per_second": "bytes per second",
    "_bytes": "bytes",
    "_joules": "joules",
    "_kwh": "kilowatt-hours",
    "_watts": "watts",
    "_celsius": "degrees Celsius",
    "_mhz": "megahertz",
    "_seconds": "seconds",
    "_hours": "hours",
    "_at": "ISO 8601 UTC time",
}
"""Unit suffixes, longest first: a key that ends in one of these is in that unit, and every key with a unit ends in
its suffix."""

TYPES = ("integer", "number", "string", "boolean", "array", "object", "time")
"""JSON types of :class:`Key` (``time`` is an ISO 8601 UTC string)."""


@dataclass(frozen=True)
class Key:
    """One public key: its name, JSON type, meaning and the name(s) it had before schema 2 (the changelog)."""

    name: str
    type: str
    meaning: str
    was: str = ""

    @property
    def unit(self) -> str:
        """The unit its suffix names, or ``""`` (a count, a name, a flag)."""
        return next((unit for suffix, unit in UNIT_SUFFIXES.items() if self.name.endswith(suffix)), "")


def _k(name: str, type_: str, meaning: str, was: str = "") -> Key:
    return Key(name, type_, meaning, was)


KEYS: tuple[Key, ...] = (
    # -- every document ---------------------------------------------------------------------------------------
    _k(
        "schema_version",
        "integer",
        "Version of the document's shape (this page describes 2).",
        "(in spend and fleet only, as 1)",
    ),
    # -- sessions ---------------------------------------------------------------------------------------------
    _k("id", "integer", "The session's id (in a session object), or the alert's id (in an alert)."),
    _k("session_id", "integer", "The session a row or a report belongs to.", "session (samples --json)"),
    _k("sessions", "array", "The sessions listed (sessions --json).", "a bare list"),
    _k("session", "object", "The session's own fields (show --json)."),
    _k("host", "string", "Host name the session was recorded on (the demo's is demo-box)."),
    _k("backend", "string", "Where samples came from: nvml or demo."),
    _k("started_at", "time", "When the session or alert started.", "start"),
    _k("ended_at", "time", "When it ended or cleared; null while running or active.", "end"),
    _k(
        "end_reason",
        "string",
        "clean, signal (a hang-up), error (an unexpected exception ended it), crashed (found open after its "
        "recorder died), recording (still running), or null.",
    ),
    _k("end_detail", "string", "What ended it: a signal's name, an exception's one-line summary."),
    _k(
        "duration_seconds",
        "number",
        "Time the session covered, by the monotonic clock (a step of the wall clock does not change it).",
        "duration_s",
    ),
    _k(
        "clock_step_seconds",
        "number",
        "How far the wall clock was stepped while the session recorded (+ forward, - back); null when it was not. "
        "The session's times are then its start + the monotonic time since.",
    ),
    _k("ticks", "integer", "Polls recorded."),
    _k("interval_seconds", "number", "Seconds between polls.", "interval"),
    _k("last_commit_at", "time", "Last time the recorder committed its figures.", "last_commit"),
    _k("gputab_version", "string", "gputab version that recorded the session."),
    _k("tags", "array", "Tags of the session's jobs (idle and unobserved left out)."),
    _k("alert_count", "integer", "Alerts raised in the session.", "alerts (a count, in sessions --json)"),
    _k("prices", "object", "The price table in force for the session (the keys of prices --json, without gpus)."),
    # -- money, time, energy: jobs, totals, GPUs ---------------------------------------------------------------
    _k("tag", "string", "The job's tag; in spend's header, the --tag filter; of a budget, its tag glob."),
    _k("cost_usd", "number", "Money charged (a job's share of its GPUs' price x time, energy included)."),
    _k("burn_rate_usd_per_hour", "number", "What it costs per hour now (the last poll)."),
    _k("gpu_hours", "number", "GPU-hours held (share x time)."),
    _k("effective_gpu_hours", "number", "GPU-hours x utilization."),
    _k("idle_gpu_hours", "number", "GPU-hours held while utilization was 0."),
    _k(
        "avg_utilization_pct",
        "number",
        "Average GPU utilization over the time held, time-weighted.",
        "avg_utilization (0-1); utilization_fraction (fleet hosts)",
    ),
    _k("energy_kwh", "number", "Energy drawn (a job's share of its GPUs')."),
    _k("energy_joules", "number", "Energy drawn, in joules (GPU rows).", "energy_j; energy_mj (snapshot) dropped"),
    _k("peak_vram_bytes", "integer", "Peak GPU memory of the job's processes.", "vram_bytes (the last poll's) dropped"),
    _k("samples", "integer", "Samples the job reported (gputab.report or gputab samples)."),
    _k(
        "tokens",
        "integer",
        "All the job's tokens: its inference servers' prompt and generated tokens plus what it reported "
        "(gputab.report, a callback or gputab samples, which carry no kind).",
    ),
    _k(
        "prompt_tokens",
        "integer",
        "Of tokens, the prompt (input) tokens the job's inference servers counted while the session recorded "
        "(null: no server counted any, or recorded before gputab kept them).",
    ),
    _k(
        "generated_tokens",
        "integer",
        "Of tokens, the generated (output) tokens the job's inference servers counted while the session recorded "
        "(null: no server counted any, or recorded before gputab kept them).",
    ),
    _k("cost_per_sample_usd", "number", "cost_usd / samples."),
    _k("cost_per_1k_samples_usd", "number", "cost_usd x 1000 / samples."),
    _k(
        "cost_per_1m_tokens_usd",
        "number",
        "cost_usd x 1e6 / tokens (all of them: a dollar is not split between prompt and generated tokens).",
    ),
    _k("cost_per_effective_gpu_hour_usd", "number", "cost_usd / effective_gpu_hours."),
    _k("gpus", "array", "A job's GPU indexes; at the top of a document, the GPU objects."),
    _k(
        "unknown_price",
        "boolean",
        "A GPU was priced at the default rate (its model is not in the table).",
        "unknown (prices --json gpus)",
    ),
    _k("busy_usd", "number", "Of cost_usd, the dollars of effective GPU time."),
    _k(
        "waste_usd",
        "number",
        "Of cost_usd, the dollars paid while the job's GPUs did nothing (spend: summed over "
        "the sessions that recorded waste; null when none did).",
    ),
    _k(
        "unmeasured_usd",
        "number",
        "Of cost_usd, the dollars of intervals whose utilization was not reported (MIG without GPM): neither "
        "busy nor waste; busy_usd + waste_usd + unmeasured_usd = cost_usd.",
    ),
    _k("waste_pct", "number", "100 x waste_usd / (busy_usd + waste_usd): over the measured part; null when none."),
    _k(
        "forecast_state",
        "string",
        "The job's forecast: unknown (no progress reported, or the window has too little "
        "data), running, stalled, done; no_recorder in snapshot when no recorder reads the reports.",
    ),
    _k(
        "progress_pct",
        "number",
        "How far the job is, 0-100, from gputab.report(progress=/total_*=) or a framework callback.",
        "progress_fraction (0-1)",
    ),
    _k(
        "progress_pct_per_hour",
        "number",
        "Growth of progress_pct per hour over the forecast window.",
        "progress_rate_per_second (fraction per second)",
    ),
    _k("eta_seconds", "number", "Seconds until the job completes at its recent rate (null while unknown)."),
    _k("eta_at", "time", "When the job completes at its recent rate."),
    _k("projected_cost_usd", "number", "Cost at completion: spent + burn rate x eta_seconds."),
    _k(
        "projected_cost_low_usd",
        "number",
        "Low end of the projected cost's range (the faster of the window's two rates).",
    ),
    _k("projected_cost_high_usd", "number", "High end of the projected cost's range (the slower of the two rates)."),
    _k(
        "first_projected_cost_usd",
        "number",
        "The job's first projection in the session, to compare with the last (show).",
    ),
    _k(
        "first_projected_progress_pct",
        "number",
        "progress_pct when the first projection was made.",
        "first_projected_progress_fraction (0-1)",
    ),
    _k("first_projected_at", "time", "When the first projection was made."),
    _k("waste_by_reason", "object", "waste_usd split by likely reason (keys: reason names), costliest first."),
    _k("waste_top_reason", "string", "The costliest reason."),
    _k("waste_evidence", "string", "The figures behind the top reason."),
    _k("waste_evidence_by_reason", "object", "The figures behind each reason (keys: reason names)."),
    _k("tensor_active_usd", "number", "cost_usd x tensor-core activity."),
    _k("throttled_usd", "object", "Dollars while the job's GPUs' clocks were held down, by reason."),
    _k("throttled_seconds", "object", "Seconds the job's GPUs' clocks were held down, by reason."),
    _k(
        "share_pct",
        "array",
        "The job's share of each GPU in gpus, in the same order (snapshot).",
        "share (fractions keyed by GPU index as text)",
    ),
    _k("processes", "array", "A job's PIDs; at the top of snapshot, the process objects."),
    _k("total", "object", "The sum over the rows (show, spend)."),
    _k("job_count", "integer", "Jobs in the session (idle and unobserved left out).", "jobs (a count)"),
    _k("gpu_count", "integer", "GPUs.", "gpus (a count, in fleet)"),
    _k("idle_cost_usd", "number", "Cost of GPUs that no process held: the (idle) row.", "idle_usd (spend)"),
    _k("unobserved_cost_usd", "number", "Cost of time no poll saw: the (unobserved) row."),
    _k(
        "unattributed_cost_usd",
        "number",
        "Cost of GPUs that worked with no process listed (another PID namespace or a VM): the (unattributed) row.",
    ),
    # -- GPUs --------------------------------------------------------------------------------------------------
    _k("index", "integer", "The GPU's NVML index."),
    _k("gpu_index", "integer", "The GPU a process or CSV row is on."),
    _k("uuid", "string", "The GPU's UUID."),
    _k("gpu_uuid", "string", "The GPU's UUID (CSV)."),
    _k("name", "string", "The GPU's model name as the driver reports it."),
    _k("gpu_name", "string", "The GPU's model name (CSV)."),
    _k("model_key", "string", "The price-table row the GPU matched (null: default rate)."),
    _k("matched_key", "string", "The row the GPU's name matches in the built-in table (prices)."),
    _k("price_mode", "string", "How GPUs are priced: rental or owned.", "mode"),
    _k(
        "rate_usd_per_hour",
        "number",
        "The GPU's price per hour in force.",
        "rate_per_hour (JSON), rate_per_hour_usd (CSV)",
    ),
    _k("price_source", "string", "Where the rate comes from.", "source (prices)"),
    _k("price_date", "string", "Date of the rate (YYYY-MM-DD).", "date (prices)"),
    _k("price_usd_per_kwh", "number", "Electricity price (owned mode).", "price_per_kwh"),
    _k("pue", "number", "Power usage effectiveness (owned mode; a ratio, 1 or more)."),
    _k("charge_energy", "boolean", "Energy is charged on top of the hourly rate."),
    _k("energy_method", "string", "How energy was measured: counter (NVML total energy) or power (W x time)."),
    _k(
        "lost",
        "boolean",
        "No usable reading of the GPU this tick (its interval is (unobserved)): it stopped answering, or see "
        "unobserved.",
    ),
    _k(
        "unobserved",
        "string",
        "Why the GPU's reading could not be used though the GPU is there (an NVML error on its process list, "
        "utilization or memory, or no answer within the poll's deadline); null otherwise.",
    ),
    _k("memory_used_bytes", "integer", "GPU memory in use."),
    _k("memory_total_bytes", "integer", "GPU memory size."),
    _k(
        "utilization_pct",
        "number",
        "GPU utilization over the last interval; fleet hosts: the mean of their GPUs.",
        "utilization_fraction (fleet, 0-1)",
    ),
    _k("memory_utilization_pct", "number", "Memory-controller utilization."),
    _k("sm_active_pct", "number", "SM activity (NVML GPM)."),
    _k("sm_occupancy_pct", "number", "SM occupancy (NVML GPM)."),
    _k("tensor_active_pct", "number", "Tensor-core activity (NVML GPM)."),
    _k("dram_bw_pct", "number", "DRAM bandwidth used (NVML GPM)."),
    _k("nvlink_rx_bytes_per_second", "number", "NVLink receive rate.", "nvlink_rx_bytes_per_s"),
    _k("nvlink_tx_bytes_per_second", "number", "NVLink transmit rate.", "nvlink_tx_bytes_per_s"),
    _k("pcie_rx_bytes_per_second", "number", "PCIe receive rate.", "pcie_rx_bytes_per_s"),
    _k("pcie_tx_bytes_per_second", "number", "PCIe transmit rate.", "pcie_tx_bytes_per_s"),
    _k("power_watts", "number", "Power draw.", "power_w"),
    _k("power_limit_watts", "number", "Power limit.", "power_limit_w"),
    _k(
        "power_source",
        "string",
        "Which NVML reading power_watts is: instant or average, GPU scope (field values), "
        "or the older power usage call.",
    ),
    _k(
        "module_power_watts",
        "number",
        "Power of the whole module where the driver reports it apart (Grace Hopper); display only, never charged.",
        "module_power_w",
    ),
    _k("mig", "array", "The GPU's MIG instances (null when MIG is off), each priced as a device (snapshot)."),
    _k(
        "mig_slices",
        "integer",
        "Compute slices of a GPU in MIG mode: an instance's rate is the GPU's rate x its slices / these.",
    ),
    _k("gpu_instance_id", "integer", "A MIG instance's GPU instance id (DCGM's GPU_I_ID)."),
    _k("compute_instance_id", "integer", "A MIG instance's compute instance id."),
    _k("slices", "integer", "Compute slices a MIG instance holds."),
    _k("gpu_instance_slices", "integer", "Slices of the MIG instance's GPU instance."),
    _k("sm_count", "integer", "Streaming multiprocessors of a MIG instance."),
    _k("label", "string", "How the views name a MIG instance (GI 1 CI 0)."),
    _k(
        "profile",
        "string",
        "A MIG instance's profile as nvidia-smi and DCGM's GPU_I_PROFILE name it (3g.40gb; 1c.3g.40gb for a "
        "compute instance smaller than its GPU instance).",
    ),
    _k(
        "mig_instances",
        "array",
        "The MIG instances a job's processes run on now, as GPU:profile (4:3g.40gb); empty off MIG.",
    ),
    _k("peak_memory_used_bytes", "integer", "A MIG instance's peak memory in use over the session (show, export)."),
    _k(
        "host_notes",
        "array",
        "What the host itself limits (a PID namespace that hides GPU processes, gVisor), said once with the fix.",
    ),
    _k(
        "activity_source",
        "string",
        "Where a GPU's SM, occupancy, tensor and DRAM activity came from: gpm (NVML GPM) or dcgm-exporter (where "
        "DCGM runs on the host, gputab leaves the profiling counters to it); null: not reported.",
    ),
    _k("sm_clock_mhz", "number", "SM clock."),
    _k("temperature_celsius", "number", "GPU temperature.", "temperature_c"),
    _k("throttle_seconds", "object", "Seconds of the last interval the GPU's clocks were held down, by reason."),
    # -- snapshot ----------------------------------------------------------------------------------------------
    _k("taken_at", "time", "When the poll was taken.", "wall (Unix seconds); mono dropped"),
    _k("driver_version", "string", "NVIDIA driver version."),
    _k("errors", "array", "What failed in this poll, in words."),
    _k("jobs", "array", "The jobs (snapshot, show, fleet; in budget list, the tags a budget holds)."),
    _k("cpu", "array", "The CPU side of each GPU process over the interval."),
    _k("pid", "integer", "Process id (host PID namespace)."),
    _k("kind", "string", "compute or graphics (processes); the alert's kind (alerts)."),
    _k("sm_pct", "number", "The process's SM utilization."),
    _k("used_memory_bytes", "integer", "GPU memory the process holds."),
    _k("tag_source", "string", "How the tag was found (env, cgroup, rule, untagged...)."),
    _k("user", "string", "Login name of the process owner; in spend --by user, the user."),
    _k("command", "string", "The process's command line, secrets redacted."),
    _k("alive", "boolean", "The process is still alive (false: its memory is stranded; null: cannot tell)."),
    _k("cpu_pct", "number", "CPU time of the process tree, percent of one core (passes 100 on several cores)."),
    _k("busiest_cpu_pct", "number", "The busiest process of the tree, percent of one core."),
    _k("busiest_pid", "integer", "That process."),
    _k("busiest_runnable_pct", "number", "Percent of the interval it was on a CPU or waiting for one."),
    _k("iowait_pct", "number", "Percent of the interval the tree waited for I/O."),
    _k("cores", "integer", "CPUs the process may run on."),
    _k("tree_size", "integer", "Processes in the tree."),
    # -- alerts and spool reports ------------------------------------------------------------------------------
    _k(
        "alerts",
        "array",
        "Alert objects, oldest first (show --json). Counts are alert_count/active_alert_count.",
        "also a count in sessions --json",
    ),
    _k("severity", "string", "info, warning or critical."),
    _k("subject", "string", "What it is about: a tag, gpu N or host."),
    _k("message", "string", "The alert in words."),
    _k("active", "boolean", "Not cleared (in an ended session: still active when recording stopped)."),
    _k("data", "object", "The figures behind an alert (keys depend on its kind)."),
    _k("rejected_reports", "array", "Spool reports the recorder ignored, per reason and file owner."),
    _k("reason", "string", "Why reports were rejected (a key of gputab.progress.spool.REASONS)."),
    _k("reason_text", "string", "The reason in words."),
    _k("owner_uid", "integer", "Owner of the rejected spool file."),
    _k("owner", "string", "Its login name."),
    _k("reports", "integer", "Reports rejected."),
    _k(
        "read_faults",
        "array",
        "GPU readings that failed and made their GPU's interval (unobserved), per GPU, call and error (show: over "
        "the session, with count; snapshot: in this poll).",
    ),
    _k(
        "call",
        "string",
        "What was being read: compute_processes, graphics_processes, utilization, memory, or the call in flight "
        "when the poll's deadline passed.",
    ),
    _k("error", "string", "NVML's name for the error (NVML_ERROR_TIMEOUT...), or no_answer (the deadline passed)."),
    _k("detail", "string", "The failed reading in words."),
    _k("first_at", "time", "When it first happened in the session."),
    _k("last_at", "time", "When it last happened."),
    # -- prices ------------------------------------------------------------------------------------------------
    _k("table_date", "string", "Date of the built-in price table."),
    _k("rental_rate", "string", "Which rental rate is used: on_demand or spot."),
    _k("default_rate_usd_per_hour", "number", "Rate of a GPU whose model is not in the table.", "default_rate"),
    _k("rows", "array", "The rows: price-table rows (prices), spend rows (spend)."),
    _k("on_demand_usd_per_hour", "number", "The row's on-demand rate.", "on_demand"),
    _k("spot_usd_per_hour", "number", "The row's spot rate.", "spot"),
    _k("also", "array", "Other GPU names the row matches."),
    _k("note", "string", "Why no GPU of this box is listed (no driver), or null."),
    # -- spend -------------------------------------------------------------------------------------------------
    _k("by", "string", "The grouping: tag, user, gpu, host, day or week."),
    _k("since", "time", "Start of the window."),
    _k("until", "time", "End of the window (null: now)."),
    _k("timezone", "string", "Where days and weeks are cut."),
    _k("databases", "array", "The database files read."),
    _k("session_count", "integer", "Sessions that contributed.", "sessions (a count, spend)"),
    _k("gpu", "string", "The GPU of a spend --by gpu row (index and name)."),
    _k("day", "string", "The day of a spend --by day row (YYYY-MM-DD)."),
    _k("week", "string", "The Monday of a spend --by week row (YYYY-MM-DD)."),
    # -- budgets (budget list) ----------------------------------------------------------------------------------
    _k("budgets", "array", "The budgets in force: the config's and the database's, merged (budget list)."),
    _k("cap_usd", "number", "What each tag the budget holds may spend in a period."),
    _k("period", "string", "When a budget's spend starts again: day, week (from Monday), month (UTC) or total."),
    _k("stop", "boolean", "The recorder stops a job at the cap (SIGINT, then SIGTERM after grace_seconds)."),
    _k("grace_seconds", "number", "Seconds between SIGINT and SIGTERM when a job is stopped at its cap."),
    _k("users", "array", "Login names whose processes a stopping budget may signal (empty: the recorder's user)."),
    _k("defined_in", "string", "Where a budget comes from: config, database (budget set) or demo."),
    _k("period_start_at", "time", "When the budget's current period began (null: total)."),
    _k("period_end_at", "time", "When the next period begins and the spend starts again (null: total)."),
    _k("set_at", "time", "When the budget was stored with budget set (null: not stored)."),
    _k("set_by", "string", "Login name of who stored it."),
    _k("spent_usd", "number", "What the tag spent in the budget's current period, over every session."),
    _k("spent_pct", "number", "spent_usd as a percent of cap_usd."),
    _k("recording", "boolean", "A live recorder is recording the tag's latest session."),
    _k("time_to_cap_seconds", "number", "Seconds until the cap at the burn rate now (0: exceeded; null: not burning)."),
    _k("projected_cap_at", "time", "When the cap is reached at the burn rate now."),
    _k("projected_spent_usd", "number", "The period's spend when the job completes, from its forecast."),
    _k("projected_over_usd", "number", "projected_spent_usd - cap_usd: by how much the forecast passes the cap."),
    # -- fleet -------------------------------------------------------------------------------------------------
    _k("prometheus", "string", "The Prometheus URL asked."),
    _k("queried_at", "time", "When the queries were evaluated."),
    _k("stale_after_seconds", "number", "A host unseen this long is stale."),
    _k("queries_per_refresh", "integer", "Requests one refresh makes."),
    _k("totals", "object", "Sums over the live hosts (fleet)."),
    _k("hosts", "array", "Host objects (fleet); a job's host names (fleet jobs)."),
    _k("host_count", "integer", "Hosts.", "hosts (a count)"),
    _k("stale_host_count", "integer", "Hosts unseen for stale_after_seconds.", "hosts_stale"),
    _k("stale", "boolean", "The host has not been seen for stale_after_seconds."),
    _k("last_seen_at", "time", "Last time the host's recorder was scraped.", "last_seen"),
    _k("session_cost_usd", "number", "What the host's current (or last) session cost so far."),
    _k("spent_today_usd", "number", "Cost since 00:00 UTC."),
    _k("idle_today_usd", "number", "Of which (idle)."),
    _k("waste_today_usd", "number", "Of a job's spent_today_usd, what was paid while its GPUs did nothing (fleet)."),
    _k("idle_burn_rate_usd_per_hour", "number", "Burn rate of the idle GPUs now."),
    _k("active_alert_count", "integer", "Alerts active now.", "alerts_active"),
    _k(
        "alert_counts", "array", "Active alerts by kind and severity ({kind, severity, count}).", "alerts (fleet hosts)"
    ),
    _k("count", "integer", "How many."),
    _k("burn_rate_history", "array", "Burn rate over the last hour ({sampled_at, burn_rate_usd_per_hour})."),
    _k("sampled_at", "time", "When a point of a history was sampled.", "time"),
    _k("per_host", "array", "A job's figures on each host."),
    _k("warnings", "array", "What was missing or odd in Prometheus's answer."),
)
"""Every public key, once."""

BY_NAME: dict[str, Key] = {k.name: k for k in KEYS}

METRICS: dict[str, str] = {
    "gputab_tags_folded": "",
    "gputab_session_info": "",
    "gputab_last_tick_timestamp_seconds": "",
    "gputab_cost_dollars_total": "cost_usd",
    "gputab_burn_rate_dollars_per_hour": "burn_rate_usd_per_hour",
    "gputab_alerts_active": "active_alert_count",
    "gputab_rejected_reports_total": "reports",
    "gputab_gpu_utilization_ratio": "utilization_pct",
    "gputab_gpu_memory_used_bytes": "memory_used_bytes",
    "gputab_gpu_memory_total_bytes": "memory_total_bytes",
    "gputab_gpu_power_watts": "power_watts",
    "gputab_gpu_temperature_celsius": "temperature_celsius",
    "gputab_gpu_lost": "lost",
    "gputab_gpu_read_errors_total": "read_faults",
    "gputab_gpu_idle": "",
    "gputab_gpu_energy_joules_total": "energy_joules",
    "gputab_gpu_cost_dollars_total": "cost_usd",
    "gputab_gpu_burn_rate_dollars_per_hour": "burn_rate_usd_per_hour",
    "gputab_gpu_price_dollars_per_hour": "rate_usd_per_hour",
    "gputab_mig_utilization_ratio": "sm_active_pct",
    "gputab_mig_memory_used_bytes": "memory_used_bytes",
    "gputab_mig_memory_total_bytes": "memory_total_bytes",
    "gputab_mig_price_dollars_per_hour": "rate_usd_per_hour",
    "gputab_mig_burn_rate_dollars_per_hour": "burn_rate_usd_per_hour",
    "gputab_mig_cost_dollars_total": "cost_usd",
    "gputab_job_cost_dollars_total": "cost_usd",
    "gputab_job_gpu_hours_total": "gpu_hours",
    "gputab_job_effective_gpu_hours_total": "effective_gpu_hours",
    "gputab_job_energy_joules_total": "energy_joules",
    "gputab_job_burn_rate_dollars_per_hour": "burn_rate_usd_per_hour",
    "gputab_job_utilization_ratio": "avg_utilization_pct",
    "gputab_job_memory_peak_bytes": "peak_vram_bytes",
    "gputab_job_samples_total": "samples",
    "gputab_job_tokens_total": "tokens",
    "gputab_job_busy_dollars_total": "busy_usd",
    "gputab_job_waste_dollars_total": "waste_usd",
    "gputab_job_unmeasured_dollars_total": "unmeasured_usd",
    "gputab_job_tensor_active_dollars_total": "tensor_active_usd",
    "gputab_job_throttled_dollars_total": "throttled_usd",
}
"""Prometheus metric -> the JSON key it mirrors (``""``: none). Prometheus names use base units: ``_dollars``,
``_ratio`` (0-1, where JSON says ``_pct``), ``_joules``, ``_bytes``, ``_seconds``, ``_total`` for counters."""

PROMETHEUS_UNITS = (
    "_dollars_total",
    "_dollars_per_hour",
    "_ratio",
    "_bytes",
    "_watts",
    "_celsius",
    "_joules_total",
    "_hours_total",
    "_seconds",
    "_total",
    "_info",
    "_active",
    "_lost",
    "_idle",
    "_folded",
)
"""How a gputab metric name may end (the unit, or a count/flag)."""

"""Fuzzing of the two parsers that take user text: the config file and the tag validator.

tests/test_config.py already feeds random *text* to the parser (which is almost never valid TOML, so it mostly
exercises the TOML error path). Here hypothesis builds *valid TOML* shaped like gputab's config, with right and
wrong types, values in and out of range and unknown keys, so the validation layer itself is what gets fuzzed.
"""

from __future__ import annotations

import math
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gputab.attribution import MAX_TAG_CHARS, sanitize_tag, validate_tag
from gputab.config.settings import Config, parse_config
from gputab.errors import ConfigError

SOURCE = "/etc/gputab/fuzz.toml"

# --- a tiny TOML writer for the generated documents (tomllib only reads) -------------------------------------


def _string(s: str) -> str:
    """A TOML basic string: quotes, backslashes, controls and DEL escaped; everything else as is."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_key = _string


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def to_toml(doc: dict) -> str:
    lines = []
    for k, v in doc.items():
        if not isinstance(v, dict):
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{_key(k)}]")
            lines += [f"{_key(kk)} = {_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


# --- strategies: the config's real keys, with values of every type -------------------------------------------

scalars = st.one_of(
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),  # TOML has nan and inf; they must be refused, never used
    st.text(max_size=20),
)
any_value = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
numbers = st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 100000))


def section(keys: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """A table with some of ``keys`` (each with its likely-valid strategy or any value) and maybe an unknown key."""
    known = st.fixed_dictionaries({}, optional={k: s | any_value for k, s in keys.items()})
    unknown = st.dictionaries(st.sampled_from(["bogus", "intervall", "Mode"]), any_value, max_size=1)
    return st.tuples(known, unknown, st.integers(0, 9)).map(lambda t: {**t[0], **t[1]} if t[2] == 0 else t[0])


override = section(
    {
        "mode": st.sampled_from(["rental", "owned", "lease"]),
        "rate_per_hour": numbers,
        "purchase_price": numbers,
        "useful_life_years": numbers,
        "ownership_utilization": numbers,
        "pue": numbers,
        "charge_energy": st.booleans(),
    }
)
config_docs = st.fixed_dictionaries(
    {},
    optional={
        "recorder": section(
            {"interval": numbers, "commit_interval": numbers, "gap_factor": numbers, "series_interval": numbers}
        ),
        "prices": section(
            {
                "mode": st.sampled_from(["rental", "owned", "free"]),
                "rental_rate": st.sampled_from(["on_demand", "spot", "reserved"]),
                "default_rate": numbers,
                "price_per_kwh": numbers,
                "pue": numbers,
                "models": st.dictionaries(st.sampled_from(["H100-SXM", "A100-80G"]), override, max_size=2),
                "gpus": st.dictionaries(st.sampled_from(["0", "GPU-abc"]), override, max_size=2),
            }
        ),
        "budgets": st.dictionaries(st.text(min_size=1, max_size=10), numbers, max_size=3),
        "metrics": section({"port": st.integers(-5, 70000), "address": st.text(max_size=10)}),
        "attribution": section(
            {
                "env_keys": st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=2),
                "rules": st.lists(
                    st.fixed_dictionaries({"pattern": st.sampled_from(["x(", "a+", "["]), "tag": st.text(max_size=8)}),
                    max_size=2,
                ),
            }
        ),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config_docs)
@pytest.mark.slow
def test_structured_config_is_accepted_valid_or_refused_with_where(doc):
    text = to_toml(doc)
    assert tomllib.loads(text) is not None  # the writer itself must produce TOML, or the test proves nothing
    try:
        cfg = parse_config(text, SOURCE)
    except ConfigError as exc:
        msg = str(exc)
        # The user is told which file, and (when a key is at fault) which key: the first word after the file.
        assert msg.startswith(SOURCE), msg
        assert exc.exit_code == 2
        assert "\n" not in msg.strip() or "invalid TOML" in msg
        return
    # Accepted: every value is in range and is what the file said (no silent clamping or defaulting).
    assert isinstance(cfg, Config) and cfg.path == SOURCE
    r = cfg.recorder
    for name in ("interval", "commit_interval", "series_interval"):
        v = getattr(r, name)
        assert 0.05 <= v <= 86400
        if name in doc.get("recorder", {}):
            assert v == doc["recorder"][name]
    assert r.gap_factor >= 1.5 and not math.isnan(r.gap_factor)
    p = cfg.prices
    assert p.mode in ("rental", "owned") and p.rental_rate in ("on_demand", "spot")
    assert p.default_rate >= 0 and p.price_per_kwh >= 0 and 1.0 <= p.pue <= 3.0
    for o in [*p.models.values(), *p.gpus.values()]:
        assert o.rate_per_hour is None or o.rate_per_hour >= 0
        assert o.pue is None or 1.0 <= o.pue <= 3.0
        assert o.ownership_utilization is None or 0 < o.ownership_utilization <= 1
    assert all(cap > 0 for cap in cfg.budgets.values())
    assert cfg.metrics.port is None or 0 < cfg.metrics.port < 65536


@pytest.mark.parametrize("bad", ["nan", "inf"])
@pytest.mark.parametrize(
    "text",
    [
        "[recorder]\ninterval = {}",
        "[recorder]\ncommit_interval = {}",
        "[recorder]\nseries_interval = {}",
        "[prices]\npue = {}",
        "[recorder]\ngap_factor = {}",
        "[prices]\ndefault_rate = {}",
        "[prices]\nprice_per_kwh = {}",
        "[budgets]\ntrain = {}",
        "[prices.models.H100-SXM]\nrate_per_hour = {}",
        "[prices.gpus.0]\npurchase_price = {}",
        "[prices.gpus.0]\nuseful_life_years = {}",
        "[prices.gpus.0]\noverhead_per_hour = {}",
        "[alerts]\nlow_utilization_pct = {}",
    ],
)
def test_non_finite_numbers_are_refused(text, bad):
    """TOML has nan and inf. A nan rate or budget turns every cost into nan (and conservation into nan == nan,
    which is false); a nan gap factor makes `dt > gap_limit` always false, so a SIGSTOP gap is charged to the job."""
    with pytest.raises(ConfigError) as exc:
        parse_config(text.format(bad), SOURCE)
    assert f"{SOURCE}:2" in str(exc.value)


# --- the tag validator --------------------------------------------------------------------------------------

tag_text = st.one_of(
    st.text(max_size=100),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
    st.builds(lambda a, b: a + b, st.sampled_from(["(", " (", "\t", "\u200b", "\x1b[31m", " "]), st.text(max_size=70)),
)


@settings(max_examples=500, deadline=None)
@given(tag_text)
def test_validate_tag_accepts_only_clean_tags_and_is_idempotent(raw):
    try:
        tag = validate_tag(raw)
    except ValueError as exc:
        assert str(exc)  # a reason the user can act on, never an empty message
        return
    assert 1 <= len(tag) <= MAX_TAG_CHARS
    assert tag == tag.strip() and tag.isprintable() and not tag.startswith("(")
    assert validate_tag(tag) == tag


@settings(max_examples=500, deadline=None)
@given(tag_text)
def test_sanitize_tag_output_always_validates(raw):
    tag = sanitize_tag(raw)
    if tag is None:
        return
    assert validate_tag(tag) == tag


@given(st.one_of(st.none(), st.integers(), st.binary(max_size=5), st.lists(st.text(max_size=3), max_size=2)))
def test_validate_tag_refuses_non_text(value):
    with pytest.raises(ValueError):
        validate_tag(value)

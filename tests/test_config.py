import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gputab.config.settings import Config, load_config, parse_config
from gputab.errors import ConfigError


def test_defaults_when_file_missing(tmp_path):
    cfg = load_config(tmp_path / "nope.toml")
    assert cfg == Config()


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", must_exist=True)


def test_valid_file():
    cfg = parse_config(
        """
[recorder]
interval = 2
[prices]
mode = "owned"
[prices.models.H100-SXM]
rate_per_hour = 3.5
[[attribution.rules]]
pattern = 'train_(\\w+)\\.py'
tag = 'exp:\\1'
[budgets]
llama = 50
"""
    )
    assert cfg.recorder.interval == 2.0
    assert cfg.prices.models["H100-SXM"].rate_per_hour == 3.5
    assert cfg.attribution.rules[0].tag == "exp:\\1"
    assert cfg.budgets == {"llama": 50.0}


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("[recorder]\ninterval = 'fast'\n", 2, "expected a number"),
        ("\n\n[recorder]\nintervl = 1\n", 4, "unknown key"),
        ("[prices]\nmode = 'borrowed'\n", 2, "rental"),
        ("[recorder]\ninterval = \n", 2, "invalid TOML"),
        ("[[attribution.rules]]\npattern = '('\ntag = 'x'\n", 2, "regular expression"),
        ("[budgets]\nx = -3\n", 2, "positive"),
        ("[alerts]\nwaste_pct = 101\n", 2, "between 0 and 100"),
        ("[alerts]\nwaste_pct = nan\n", 2, "finite"),
        ("\n[alerts]\nwaste_minutes = 0\n", 3, "more than 0"),
        ("[alerts]\nwaste_minutes = 10081\n", 2, "between 0 and 10,080"),
    ],
)
def test_bad_file_names_file_line_and_fault(tmp_path, text, line, words):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert str(p) in msg and words in msg
    assert f":{line}" in msg
    assert exc.value.exit_code == 2


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_parser_only_raises_config_error(text):
    try:
        parse_config(text)
    except ConfigError:
        pass

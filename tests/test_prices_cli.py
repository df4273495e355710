import json

from click.testing import CliRunner

from gputab.cli import cli


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_prices_json_matches_demo_gpus():
    r = run("--demo", "prices", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    keys = {row["model_key"] for row in doc["rows"]}
    assert {"H100-SXM", "A100-80GB", "(default)"} <= keys
    by_index = {g["index"]: g for g in doc["gpus"]}
    assert by_index[0]["model_key"] == "H100-SXM" and by_index[0]["rate_usd_per_hour"] == 4.76
    assert by_index[2]["model_key"] == "A100-80GB" and not by_index[2]["unknown_price"]
    for row in doc["rows"]:
        assert row["price_source"] and row["price_date"]


def test_prices_follow_config_overrides(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[prices]\nrental_rate = "spot"\n[prices.gpus."2"]\nrate_per_hour = 9.5\n')
    doc = json.loads(run("--demo", "--config", str(cfg), "prices", "--json").output)
    by_index = {g["index"]: g for g in doc["gpus"]}
    assert by_index[0]["rate_usd_per_hour"] == 2.69  # H100-SXM spot
    assert by_index[2]["rate_usd_per_hour"] == 9.5


def test_owned_without_purchase_price_is_a_config_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[prices]\nmode = "owned"\n')
    import pytest

    from gputab.errors import ConfigError

    with pytest.raises(ConfigError, match="purchase_price"):
        CliRunner().invoke(cli, ["--demo", "--config", str(cfg), "prices"], catch_exceptions=False)

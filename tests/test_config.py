"""Configuration: every problem reported at once with its key path; secrets only from the environment."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.config import load_config
from connector.durations import parse_duration
from connector.errors import ConfigError
from connector.redact import RedactingFilter, Secret
from connector.schedules import trigger_for
from connector.starter import MAPPINGS

ENV = {"LONESCALE_API_KEY": "ls_live_abcdef123456", "HS_TOKEN": "pat-na1-secret-token", "SF_ID": "id-1234", "SF_SECRET": "sf-secret-9876"}  # fmt: skip


SHIPPED = MAPPINGS


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "mappings").mkdir(exist_ok=True)
    for crm, shipped in (("hubspot", "hubspot-contacts.toml"), ("salesforce", "salesforce-contact.toml")):
        (tmp_path / "mappings" / f"{crm}.toml").write_text((SHIPPED / shipped).read_text())
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


GOOD = """
[lonescale]
api_key_env = "LONESCALE_API_KEY"
enrichment_type = ["email", "profile"]
detect_job_change = true

[webhook]
listen = "0.0.0.0:8080"
public_url = "https://sync.example.com/"

[[instances]]
name = "acme-hubspot"
crm = "hubspot"
mapping = "mappings/hubspot.toml"
schedule = "*/15 * * * *"
start_date = 2026-01-01T00:00:00Z

[instances.hubspot]
access_token_env = "HS_TOKEN"

[[instances]]
name = "acme-sf"
crm = "salesforce"
mapping = "mappings/salesforce.toml"

[instances.salesforce]
instance_url = "https://acme.my.salesforce.com"
client_id_env = "SF_ID"
client_secret_env = "SF_SECRET"
"""


def test_a_valid_file_loads_with_defaults_filled_in(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env=ENV)
    hubspot, salesforce = config.settings.instances
    assert config.settings.lonescale.base_url == "https://public-api.lonescale.com"
    assert config.settings.webhook.public_url == "https://sync.example.com"
    assert (config.settings.webhook.host, config.settings.webhook.port) == ("0.0.0.0", 8080)
    assert config.settings.store.url == "sqlite:///lonescale-sync.db"
    assert hubspot.hubspot_settings.base_url == "https://api.hubapi.com"
    assert salesforce.schedule == "every 15m"
    assert salesforce.salesforce is not None and config.mappings["acme-sf"].object == "Contact"
    assert config.secret("HS_TOKEN").reveal() == "pat-na1-secret-token"


def test_every_problem_is_reported_at_once_with_its_key_path(tmp_path: Path) -> None:
    bad = """
[lonescale]
enrichment_type = ["email", "fax", "email"]
batch_sise = 50

[webhook]
listen = "8080"

[[instances]]
name = "acme"
crm = "hubspot"
mapping = "mappings/missing.toml"
schedule = "every fortnight"

[[instances]]
crm = "pipedrive"
mapping = "mappings/hubspot.toml"

[[instances]]
name = "sf"
crm = "salesforce"
mapping = "mappings/hubspot.toml"

[instances.salesforce]
instance_url = "acme.my.salesforce.com"
auth = "jwt"
"""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, bad), env={})
    problems = "\n".join(caught.value.problems)
    for expected in (
        "lonescale.enrichment_type[1]:",
        "lonescale.batch_sise: unknown key",
        "webhook.listen: '8080' is not 'host:port'",
        "instances[0].schedule:",
        "instances[0].mapping: file",
        "instances[1].name: required key is missing",
        "instances[1].crm:",
        "instances[2].salesforce.instance_url: 'acme.my.salesforce.com' is not an absolute http(s) URL",
        "lonescale.api_key_env: environment variable LONESCALE_API_KEY is not set",
        "instances[0].hubspot.access_token_env: environment variable HUBSPOT_ACCESS_TOKEN is not set",
        "instances[2].salesforce.client_id_env: environment variable SALESFORCE_CLIENT_ID is not set",
    ):
        assert expected in problems, f"missing {expected!r} in:\n{problems}"
    assert str(caught.value).count("\n  - ") == len(caught.value.problems)


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        (
            '[lonescale]\nenrichment_type = ["email"]\ndetect_job_change = true\n',
            "detect_job_change needs 'profile'",
        ),
        ('[lonescale]\nenrichment_type = ["email", "email"]\n', "each enrichment type may appear once"),
        ("[lonescale]\nenrichment_type = []\n", "lonescale.enrichment_type"),
    ],
)
def test_lonescale_settings_follow_the_api_rules(tmp_path: Path, fragment: str, message: str) -> None:
    text = fragment + "[webhook]" + GOOD.split("[webhook]", 1)[1]
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), env=ENV)


def test_a_token_retires_a_week_after_its_job_and_a_stop_waits_20_s_for_results_by_default(
    tmp_path: Path,
) -> None:
    webhook = load_config(write(tmp_path, GOOD), env=ENV).settings.webhook
    assert (webhook.token_grace_delta, webhook.drain_seconds) == (timedelta(days=7), 20)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('token_grace = "30m"', "webhook.token_grace: '30m' is shorter than an hour"),
        ('token_grace = "a week"', "webhook.token_grace: 'a week' is not a duration"),
        ("drain_seconds = -1", "webhook.drain_seconds"),
        ("drain_seconds = 3600", "webhook.drain_seconds"),
    ],
)
def test_webhook_limits_out_of_range_are_refused(tmp_path: Path, line: str, message: str) -> None:
    text = GOOD.replace("[webhook]\n", f"[webhook]\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), env=ENV)


def test_jwt_auth_needs_a_username_and_a_key_file(tmp_path: Path) -> None:
    text = GOOD.replace(
        'client_secret_env = "SF_SECRET"', 'auth = "jwt"\nusername = "u@x.com"\nprivate_key_path = "k.pem"'
    )
    with pytest.raises(
        ConfigError, match=r"instances\[1\].salesforce.private_key_path: file .*k.pem does not exist"
    ):
        load_config(write(tmp_path, text), env=ENV)
    (tmp_path / "k.pem").write_text("key")
    assert load_config(write(tmp_path, text), env=ENV).settings.instances[1].salesforce is not None


@pytest.mark.parametrize(
    ("audience", "loaded"),
    [
        (None, "login"),
        ('"test"', "test"),
        ('"https://acme.my.site.com/partners/"', "https://acme.my.site.com/partners"),
    ],
)
def test_a_jwt_is_signed_for_login_by_default_or_for_test_or_a_site(
    tmp_path: Path, audience: str | None, loaded: str
) -> None:
    setting = f"\njwt_audience = {audience}" if audience else ""
    text = GOOD.replace(
        'client_secret_env = "SF_SECRET"',
        f'auth = "jwt"\nusername = "u@x.com"\nprivate_key_path = "k.pem"{setting}',
    )
    (tmp_path / "k.pem").write_text("key")
    salesforce = load_config(write(tmp_path, text), env=ENV).settings.instances[1].salesforce
    assert salesforce is not None and salesforce.jwt_audience == loaded


@pytest.mark.parametrize(
    ("audience", "message"),
    [
        ('"https://acme.my.salesforce.com"', "not a JWT audience: use 'login' \\(production\\) or 'test'"),
        ('"prod"', "'prod' is not 'login', 'test' or an https:// Experience Cloud site URL"),
    ],
)
def test_a_my_domain_url_is_refused_as_jwt_audience(tmp_path: Path, audience: str, message: str) -> None:
    text = GOOD.replace('client_secret_env = "SF_SECRET"', f"jwt_audience = {audience}")
    with pytest.raises(ConfigError, match=rf"instances\[1\].salesforce.jwt_audience: .*{message}"):
        load_config(write(tmp_path, text), env=ENV)


def test_instance_names_are_unique(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="repeated: acme"):
        load_config(
            write(tmp_path, GOOD.replace('"acme-hubspot"', '"acme"').replace('"acme-sf"', '"acme"')), env=ENV
        )


def test_a_crm_needs_its_own_table(tmp_path: Path) -> None:
    text = GOOD.replace('crm = "salesforce"', 'crm = "hubspot"')
    with pytest.raises(ConfigError, match=r"instances\[1\]: .*cannot take an \[instances.salesforce\]"):
        load_config(write(tmp_path, text), env=ENV)


def test_broken_toml_and_missing_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env=ENV)
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[lonescale\n"), env=ENV)


def test_secrets_never_show_in_repr_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(write(tmp_path, GOOD), env=ENV)
    secret = config.secret("LONESCALE_API_KEY")
    assert "ls_live_abcdef123456" not in repr(secret) + str(secret) + repr(config) + repr(config.secrets)
    logger = logging.getLogger("test.redaction")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info("calling with x-api-key=%s and token %s", secret.reveal(), "pat-na1-secret-token")
    assert "ls_live_abcdef123456" not in caplog.text and "pat-na1-secret-token" not in caplog.text
    assert "x-api-key=***" in caplog.text
    assert Secret("abcd1234", env="X") == Secret("abcd1234")


@pytest.mark.parametrize(
    ("text", "seconds"), [("15m", 900), ("1h30m", 5400), ("90d", 90 * 86400), ("45s", 45)]
)
def test_durations_read_as_people_write_them(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "15", "fortnight", "15 minutes"])
def test_unreadable_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


SATURDAY_10AM = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def next_runs(schedule: str, count: int = 3) -> list[str]:
    trigger, at, runs = trigger_for(schedule), SATURDAY_10AM, []
    for _ in range(count):
        at = trigger.get_next_fire_time(None, at + timedelta(seconds=1))
        runs.append(f"{at:%a %H:%M}")
    return runs


@pytest.mark.parametrize(
    ("schedule", "runs"),
    [
        ("0 9 * * 1-5", ["Mon 09:00", "Tue 09:00", "Wed 09:00"]),  # crontab's 1-5: Monday to Friday
        ("0 9 * * MON-FRI", ["Mon 09:00", "Tue 09:00", "Wed 09:00"]),
        ("0 9 * * 0", ["Sun 09:00", "Sun 09:00", "Sun 09:00"]),  # 0 is Sunday, not Monday
        ("0 9 * * 7", ["Sun 09:00", "Sun 09:00", "Sun 09:00"]),  # and so is 7
        ("0 9 * * 5-7", ["Sun 09:00", "Fri 09:00", "Sat 09:00"]),  # Friday to Sunday
        ("@hourly", ["Sat 11:00", "Sat 12:00", "Sat 13:00"]),
    ],
)
def test_a_schedule_runs_when_its_crontab_line_says_not_a_day_later(schedule: str, runs: list[str]) -> None:
    assert next_runs(schedule) == runs


def test_a_day_of_month_and_a_day_of_week_run_when_either_matches_as_in_crontab() -> None:
    # The 1st of the month, and every Monday: Monday 7th, Monday 14th, ... and Friday January 1st.
    trigger, at = trigger_for("0 9 1 * 1"), datetime(2026, 12, 27, tzinfo=UTC)
    days = []
    for _ in range(3):
        at = trigger.get_next_fire_time(None, at + timedelta(seconds=1))
        days.append(f"{at:%a %d}")
    assert days == ["Mon 28", "Fri 01", "Mon 04"]


@pytest.mark.parametrize(
    ("schedule", "said"),
    [
        ("* * * *", "five-field cron line"),
        ("*/61 * * * *", "the step value (61) is higher than the total range"),
        ("61 * * * *", "higher than the maximum value (59)"),
        ("* 24 * * *", "higher than the maximum value (23)"),
        ("*/x * * * *", "Unrecognized expression"),
        ("0 9 * * 8", "is not 0-7 or a day name"),
        ("0 9 * * 5-1", "runs backwards"),
        ("every fortnight", "is not a duration"),
    ],
)
def test_a_schedule_the_scheduler_would_refuse_is_refused_with_why(schedule: str, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        trigger_for(schedule)


def test_config_and_mapping_problems_come_in_one_pass_each_with_the_value_found(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('crm = "hubspot"', 'crm = "hubspott"').replace(
        'name = "acme-sf"', 'name = "acme-sf"\nsettle = 60'))  # fmt: skip
    (tmp_path / "mappings" / "salesforce.toml").write_text("schema_version = 1\ncrm = salesforce\n")
    (tmp_path / "mappings" / "hubspot.toml").write_text(
        (SHIPPED / "hubspot-contacts.toml")
        .read_text()
        .replace('policy = "fill_empty"', 'policy = "fill_emtpy"', 1)
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=ENV)
    problems = caught.value.problems
    assert "instances[0].crm: Input should be 'salesforce' or 'hubspot' (got 'hubspott')" in problems
    assert "instances[1].settle: Input should be a valid string (got 60)" in problems
    hubspot = f"instances[0].mapping ({tmp_path / 'mappings' / 'hubspot.toml'})"
    assert any(
        p.startswith(f"{hubspot}: write_back[0].policy:") and "(got 'fill_emtpy')" in p for p in problems
    )
    salesforce = f"instances[1].mapping ({tmp_path / 'mappings' / 'salesforce.toml'}): not valid TOML"
    assert any(p.startswith(salesforce) for p in problems), "a mapping's syntax error names its file"


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("[lonescale]", '[lonescale]\nbatch_size = "100"',
         "lonescale.batch_size: Input should be a valid integer (got '100')"),
        ("detect_job_change = true", 'detect_job_change = "yes"',
         "lonescale.detect_job_change: Input should be a valid boolean (got 'yes')"),
        ("[lonescale]", "[lonescale]\ntimeout_seconds = true",
         "lonescale.timeout_seconds: Input should be a valid number (got True)"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_type_is_refused_not_coerced(
    tmp_path: Path, old: str, new: str, said: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD.replace(old, new)), env=ENV)
    assert said in caught.value.problems


def with_custom(shared: str, hubspots: str) -> str:
    """GOOD with a `[lonescale] custom` line, and one in the HubSpot instance's `[instances.lonescale]`."""
    return GOOD.replace("detect_job_change = true", f"detect_job_change = true\ncustom = {shared}").replace(
        "[instances.hubspot]", f"[instances.lonescale]\ncustom = {hubspots}\n\n[instances.hubspot]"
    )


def test_the_request_custom_is_read_with_an_instances_own_keys_winning_key_by_key(tmp_path: Path) -> None:
    shared = '{ provider = "lonescale", enrichment_type = "email and phone", batch = "nightly" }'
    text = with_custom(shared, '{ enrichment_type = "phone" }')

    config = load_config(write(tmp_path, text), env=ENV)

    hubspot, salesforce = config.settings.instances
    lonescale = config.settings.lonescale
    assert hubspot.request_custom(lonescale) == {
        "provider": "lonescale",
        "enrichment_type": "phone",
        "batch": "nightly",
    }
    assert salesforce.request_custom(lonescale) == {
        "provider": "lonescale",
        "enrichment_type": "email and phone",
        "batch": "nightly",
    }


def test_request_custom_values_must_be_strings_and_id_is_the_connectors_all_said_at_once(
    tmp_path: Path,
) -> None:
    text = with_custom(
        '{ provider = 3, id = "crm-1", mode = ["a"], ok = "fine" }',
        '{ enrichment_type = true, id = "x", contact_id = "003A" }',
    )

    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=ENV)

    problems = caught.value.problems
    assert "lonescale.custom.provider: Input should be a valid string (got 3)" in problems
    assert "lonescale.custom.mode: Input should be a valid string" in problems
    hubspots = "instances[0].lonescale.custom"
    assert f"{hubspots}.enrichment_type: Input should be a valid string (got True)" in problems
    assert (
        "lonescale.custom.id: id = 'crm-1' cannot be set: each request's custom.id is its job's id (the "
        "connector's own, which the webhook checks results against); remove it"
    ) in problems
    assert any(p.startswith(f"{hubspots}.id: id = 'x' cannot be set") for p in problems)
    assert any(
        p.startswith(f"{hubspots}.contact_id: contact_id = '003A' cannot be set here") for p in problems
    )
    assert len(problems) == 6, problems


def test_without_a_cluster_section_one_process_runs_as_before(tmp_path: Path) -> None:
    cluster = load_config(write(tmp_path, GOOD), env=ENV).settings.cluster
    assert not cluster.enabled
    assert (cluster.tick_seconds, cluster.stall_timeout, cluster.lease_ttl) == (5, "30s", "10m")


def test_a_cluster_needs_a_postgresql_store_said_beside_the_other_problems(tmp_path: Path) -> None:
    text = GOOD + '\n[cluster]\nenabled = true\nstall_timeout = "1s"\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=ENV)
    said = str(caught.value)
    assert "cluster.enabled: true needs a PostgreSQL store; [store] url is sqlite:…" in said, said
    assert "cluster.stall_timeout: '1s' is under 3s" in said, said


def test_a_cluster_on_postgresql_from_an_environment_variable_loads(tmp_path: Path) -> None:
    cluster = '[store]\nurl_env = "DB_URL"\n\n[cluster]\nenabled = true\nlease_ttl = "1m"\n\n'
    text = GOOD.replace("[webhook]", cluster + "[webhook]")
    config = load_config(write(tmp_path, text), env={**ENV, "DB_URL": "postgresql+psycopg://u:pw@db/sync"})
    assert config.settings.cluster.enabled and config.settings.cluster.lease_delta == timedelta(minutes=1)

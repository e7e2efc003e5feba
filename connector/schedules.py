"""An instance's schedule: `every 15m`, a five-field crontab line in UTC, or an alias such as `@hourly`.

Parsed by the scheduler's own parser (APScheduler's CronTrigger), so what the config check accepts is exactly
what the daemon runs. Two crontab rules differ in APScheduler 3 and are translated here:
- day-of-week numbers: crontab counts 0 (or 7) = Sunday, APScheduler 0 = Monday, so `1-5` would run
  Tuesday to Saturday (https://github.com/agronholm/apscheduler/issues/286, not fixed in 3.x); the field is
  rewritten with day names, which both read alike;
- a restricted day of month AND day of week: crontab runs when either matches (crontab(5), "Note: The day
  of a command's execution can be specified in the following two fields ... the command will be run when
  either field matches"), APScheduler only when both do: such a line becomes two triggers, either firing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.durations import parse_duration

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  # crontab's numbering: Sunday is 0 (and 7)


def _day(text: str, field: str) -> int:
    name = text.strip().lower()
    if name[:3] in DAYS and name.isalpha():
        return DAYS.index(name[:3])
    if name.isdigit() and 0 <= int(name) <= 7:
        return int(name)
    raise ValueError(f"day of week {field!r}: {text!r} is not 0-7 or a day name (mon, tue, …)")


def weekdays(field: str) -> str:
    """A crontab day-of-week field as APScheduler day names, e.g. `1-5` → `mon,tue,wed,thu,fri`."""
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        base, slash, step_text = item.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"day of week {field!r}: step {step_text!r} is not a positive number")
        step = int(step_text) if slash else 1
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            first, last = base.split("-", 1)
            low, high = _day(first, field), _day(last, field)
            high = 7 if high == 0 and low > 0 else high  # `fri-sun`: Sunday closes the week
        else:
            low = _day(base, field)
            high = 6 if slash else low  # `1/2`: from Monday on, every other day
        if low > high:
            raise ValueError(f"day of week {field!r}: {base!r} runs backwards")
        days.update(day % 7 for day in range(low, high + 1, step))
    return ",".join(DAYS[day] for day in sorted(days))


def _cron(line: str) -> BaseTrigger:
    fields = line.split()
    if len(fields) != 5:
        raise ValueError(
            f"{line!r} is neither 'every <duration>', an alias ({', '.join(ALIASES)}) nor a five-field cron "
            "line such as '*/15 * * * *'"
        )
    minute, hour, day, month, weekday = fields
    try:
        if day != "*" and weekday != "*":  # crontab: either one matching is enough
            return OrTrigger(
                [
                    CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=UTC),
                    CronTrigger(
                        minute=minute, hour=hour, month=month, day_of_week=weekdays(weekday), timezone=UTC
                    ),
                ]
            )
        return CronTrigger(
            minute=minute, hour=hour, day=day, month=month, day_of_week=weekdays(weekday), timezone=UTC
        )
    except ValueError as exc:
        raise ValueError(f"cron line {line!r}: {exc}") from None


def trigger_for(schedule: str) -> BaseTrigger:
    """The scheduler's trigger for a schedule; ValueError, in a sentence, for one it would refuse."""
    text = schedule.strip()
    if text.startswith("every "):
        return IntervalTrigger(
            seconds=parse_duration(text.removeprefix("every ")).total_seconds(), timezone=UTC
        )
    return _cron(ALIASES.get(text.lower(), text))


def next_time(schedule: str, after: datetime, anchor: datetime | None = None) -> datetime:
    """The first time strictly after `after` at which `schedule` runs: the one evaluation of a schedule, for
    the daemon's clock and for anything that shows when an instance runs next. An interval keeps to its grid
    from `anchor` (the time it was last due), as APScheduler's IntervalTrigger keeps to its start: a tick that
    comes late does not push every later run back."""
    text = schedule.strip()
    if text.startswith("every "):
        interval = parse_duration(text.removeprefix("every "))
        start = after if anchor is None or anchor > after else anchor
        return start + interval * ((after - start) // interval + 1)
    fire: datetime | None = trigger_for(schedule).get_next_fire_time(None, after + timedelta(microseconds=1))
    if fire is None:  # pragma: no cover — a five-field line always fires again
        raise ValueError(f"{schedule!r} never runs again")
    return fire.astimezone(UTC)


def longest_gap(schedule: str, start: datetime, fires: int = 64) -> timedelta:
    """The longest wait between two runs of `schedule` among its next `fires` runs after `start`, by
    `next_time`: an interval's period, a cron line's widest gap (`0 9 * * 1-5`: Friday to Monday, 72 h). What
    "three runs missed" means for an instance (the stale-instance alert, deploy/alerts.yml)."""
    longest, previous = timedelta(0), next_time(schedule, start)
    for _ in range(fires):
        fire = next_time(schedule, previous, anchor=previous)
        longest, previous = max(longest, fire - previous), fire
    return longest

"""5-field POSIX cron: validation and fire times with literal wall-clock matching.

One implementation serves the client-side validation and the emulator's scheduler (its fires
and its ``upcoming_runs_at``), so the two can never disagree about what a schedule means. Waits
never compute fire times themselves: they read the service's ``upcoming_runs_at``.

Semantics (from the scheduled-deployments guide):
- exactly five fields ``minute hour day-of-month month day-of-week``; day-of-week 0-7 with
  both 0 and 7 meaning Sunday; no seconds or year field, no ``L W # ?``, no ``@`` shortcuts;
- wall-clock matching in an IANA timezone: a wall time skipped by a spring-forward never
  fires, a wall time repeated by a fall-back fires twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pendulum

MONTH_NAMES = {
    n: i
    for i, n in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)
}
DAY_NAMES = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _FieldSpec("minute", 0, 59),
    _FieldSpec("hour", 0, 23),
    _FieldSpec("day-of-month", 1, 31),
    _FieldSpec("month", 1, 12, MONTH_NAMES),
    _FieldSpec("day-of-week", 0, 7, DAY_NAMES),
)
_ELEMENT = re.compile(r"^(?P<range>\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?$")
_UNSUPPORTED = set("LW#?")
_NAME = re.compile(r"[A-Za-z]{3}")
_ALL_NAMES = MONTH_NAMES.keys() | DAY_NAMES.keys()


class CronError(ValueError):
    """A cron expression the API would refuse; the message names the field and the rule."""


@dataclass(frozen=True)
class CronSchedule:
    """A parsed expression: the allowed values of each field."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    day_of_month_restricted: bool
    day_of_week_restricted: bool

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom_ok = day.day in self.days_of_month
        dow_ok = (day.isoweekday() % 7) in self.days_of_week
        # POSIX: when both day fields are restricted, a day matching either one fires.
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return dom_ok or dow_ok
        if self.day_of_month_restricted:
            return dom_ok
        if self.day_of_week_restricted:
            return dow_ok
        return True


def _value(token: str, spec: _FieldSpec) -> int:
    if token.isdigit():
        number = int(token)
    elif spec.names and token.lower() in spec.names:
        number = spec.names[token.lower()]
    else:
        raise CronError(f"{spec.name} field: {token!r} is not a number")
    if not spec.low <= number <= spec.high:
        raise CronError(f"{spec.name} field: value {number} is outside {spec.low}-{spec.high}")
    return number


def _parse_field(text: str, spec: _FieldSpec) -> set[int]:
    values: set[int] = set()
    for element in text.split(","):
        match = _ELEMENT.match(element)
        if not match:
            raise CronError(f"{spec.name} field: {element!r} is not a valid cron element")
        step = int(match["step"]) if match["step"] is not None else 1
        if step < 1:
            raise CronError(f"{spec.name} field: step in {element!r} must be at least 1")
        if match["range"] == "*":
            low, high = spec.low, spec.high
        elif "-" in match["range"]:
            first, last = match["range"].split("-")
            low, high = _value(first, spec), _value(last, spec)
            if low > high:
                raise CronError(f"{spec.name} field: range {element!r} runs backwards")
        else:
            low = _value(match["range"], spec)
            high = spec.high if match["step"] is not None else low
        values.update(range(low, high + 1, step))
    return values


@lru_cache(maxsize=4096)
def parse_cron(expression: str) -> CronSchedule:
    """Parse and validate ``expression``; raise :class:`CronError` naming the offending field."""
    if not isinstance(expression, str) or not expression.strip():
        raise CronError("expression must be a non-empty 5-field cron string")
    if expression.strip().startswith("@"):
        raise CronError(f"shortcut {expression.strip()!r} is not supported; write the 5 fields out")
    # Month and day names (JUL, WED) contain letters that are also unsupported specials.
    unnamed = _NAME.sub(lambda m: "" if m[0].lower() in _ALL_NAMES else m[0], expression)
    bad = sorted(_UNSUPPORTED.intersection(unnamed.upper()))
    if bad:
        raise CronError(f"special characters {' '.join(bad)} are not supported (POSIX cron only)")
    parts = expression.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}")
    minutes, hours, doms, months, dows = (_parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True))
    if 7 in dows:
        dows = (dows - {7}) | {0}
    return CronSchedule(
        expression=expression,
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days_of_month=frozenset(doms),
        months=frozenset(months),
        days_of_week=frozenset(dows),
        day_of_month_restricted=not parts[2].startswith("*"),
        day_of_week_restricted=not parts[4].startswith("*"),
    )


# Files in the zoneinfo directory that ZoneInfo opens but that name no zone: the machine's own
# zone and the POSIX rules template.
NOT_ZONE_NAMES = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``; raise ``ValueError`` when the database has no such zone."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError("timezone must be an IANA timezone name such as 'UTC' or 'America/New_York'")
    if name in NOT_ZONE_NAMES:
        raise ValueError(f"unknown IANA timezone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {name!r}") from None


def _instants(day: date, hour: int, minute: int, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants whose wall-clock reading in ``tz`` is ``day hour:minute``: none in a
    spring-forward gap, two in a fall-back fold, one otherwise."""
    wall = datetime(day.year, day.month, day.day, hour, minute)
    found: list[datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == wall and instant not in found:
            found.append(instant)
    return found


# Far enough for the rarest valid schedule (29 February on a given weekday, ~28 years apart).
_SEARCH_DAYS = 366 * 30


def _fires_on(day: date, schedule: CronSchedule, tz: ZoneInfo) -> list[datetime]:
    if not schedule.matches_day(day):
        return []
    return [i for hour in schedule.hours for minute in schedule.minutes for i in _instants(day, hour, minute, tz)]


def fire_times_after(expression: str, timezone: str, after: datetime, count: int = 5) -> list[pendulum.DateTime]:
    """The next ``count`` fire instants strictly after ``after``, in UTC, before jitter."""
    schedule = parse_cron(expression)
    tz = zone(timezone)
    after_utc = after.astimezone(UTC)
    day = after_utc.astimezone(tz).date() - timedelta(days=1)
    found: list[datetime] = []
    settled = False
    for _ in range(_SEARCH_DAYS):
        found.extend(i for i in _fires_on(day, schedule, tz) if i > after_utc)
        day += timedelta(days=1)
        if len(found) >= count:
            # Look at one more day: a fold near midnight can order instants across days.
            if settled:
                break
            settled = True
    return [pendulum.instance(i) for i in sorted(found)[:count]]


def fire_times_between(expression: str, timezone: str, start: datetime, end: datetime) -> list[pendulum.DateTime]:
    """The fire instants in ``(start, end]``, in UTC, before jitter: for short spans (the days
    between are walked one by one)."""
    schedule = parse_cron(expression)
    tz = zone(timezone)
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    day = start_utc.astimezone(tz).date() - timedelta(days=1)
    last = end_utc.astimezone(tz).date() + timedelta(days=1)
    found: list[datetime] = []
    while day <= last:
        found.extend(i for i in _fires_on(day, schedule, tz) if start_utc < i <= end_utc)
        day += timedelta(days=1)
    return [pendulum.instance(i) for i in sorted(found)]

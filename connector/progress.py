"""One live line of progress on stderr while long work runs (a pull, a wait for results, a replay), when
stderr is a terminal; nothing at all otherwise, so logs, pipes and cron mail stay clean."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.status import Status


class Activity:
    """`with Activity("sf: pulling") as activity: … activity.say("sf: pulled 2,000")`."""

    def __init__(self, title: str, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.title = title
        self._status: Status | None = None

    @property
    def shown(self) -> bool:
        return self.console.is_terminal  # rich also honours FORCE_COLOR / TTY_INTERACTIVE

    def say(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)

    def __enter__(self) -> Activity:
        if self.shown:
            self._status = self.console.status(self.title)
            self._status.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

"""How services report progress without printing: a front end passes a Reporter (the CLI fills
one with rich progress bars). Kept free of imports so any module may use it."""

from __future__ import annotations


class Reporter:
    """Progress callbacks a front end may fill in; services never print."""

    def start(self, label: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def stop(self) -> None: ...

    def note(self, text: str) -> None: ...

"""Readable, prefixed output: ``users   | <line>``, one colour per process when on a terminal."""

from __future__ import annotations

import sys
import threading
from typing import IO

RESET = "\033[0m"
# Cyan, green, yellow, magenta, blue, red: one per process in start order.
COLOURS = ("\033[36m", "\033[32m", "\033[33m", "\033[35m", "\033[34m", "\033[31m")
PREFIX_WIDTH = 7


def prefix(name: str, line: str, *, colour: str | None = None, width: int = PREFIX_WIDTH) -> str:
    """``name`` padded to ``width``, a bar, then ``line`` without its trailing newline."""
    label = f"{name:<{width}} |"
    if colour:
        label = f"{colour}{label}{RESET}"
    return f"{label} {line.rstrip()}"


class Console:
    """Writes whole lines from several threads without interleaving them."""

    def __init__(self, stream: IO[str] | None = None, *, colour: bool | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()
        self.colour = self._stream.isatty() if colour is None else colour
        self._assigned: dict[str, str] = {}

    def colour_for(self, name: str) -> str | None:
        if not self.colour:
            return None
        if name not in self._assigned:
            self._assigned[name] = COLOURS[len(self._assigned) % len(COLOURS)]
        return self._assigned[name]

    def line(self, name: str, text: str) -> None:
        """One line of process ``name``'s output."""
        self.write(prefix(name, text, colour=self.colour_for(name)))

    def say(self, text: str) -> None:
        """A line of the supervisor's own (prefixed ``dev``)."""
        self.line("dev", text)

    def write(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def pump(self, name: str, source: IO[bytes]) -> threading.Thread:
        """Copy ``source`` line by line, prefixed, in a daemon thread (ends at EOF)."""

        def run() -> None:
            for raw in iter(source.readline, b""):
                self.line(name, raw.decode("utf-8", errors="replace"))
            source.close()

        thread = threading.Thread(target=run, name=f"pump-{name}", daemon=True)
        thread.start()
        return thread

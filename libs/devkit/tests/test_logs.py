"""Prefixed, readable output lines."""

from __future__ import annotations

import io

from devkit.logs import COLOURS, RESET, Console, prefix


def test_prefix_pads_the_name_and_strips_the_newline() -> None:
    assert prefix("users", "started\n") == "users   | started"
    assert prefix("gateway", "x") == "gateway | x"


def test_prefix_colours_the_label_only() -> None:
    assert prefix("orders", "hi", colour=COLOURS[0]) == f"{COLOURS[0]}orders  |{RESET} hi"


def test_console_colours_only_when_asked_or_on_a_tty() -> None:
    stream = io.StringIO()
    console = Console(stream)
    assert console.colour is False  # StringIO is not a terminal
    console.line("users", "plain")
    assert stream.getvalue() == "users   | plain\n"

    coloured = Console(io.StringIO(), colour=True)
    assert coloured.colour_for("users") == COLOURS[0]
    assert coloured.colour_for("orders") == COLOURS[1]
    assert coloured.colour_for("users") == COLOURS[0]


def test_say_is_the_supervisors_own_prefix() -> None:
    stream = io.StringIO()
    Console(stream).say("the platform is up")
    assert stream.getvalue() == "dev     | the platform is up\n"


def test_pump_prefixes_every_line_of_a_stream() -> None:
    stream = io.StringIO()
    console = Console(stream)
    thread = console.pump("worker", io.BytesIO(b"one\ntwo\n\xff bad utf-8\n"))
    thread.join(timeout=5)
    assert stream.getvalue().splitlines() == [
        "worker  | one",
        "worker  | two",
        "worker  | \ufffd bad utf-8",
    ]

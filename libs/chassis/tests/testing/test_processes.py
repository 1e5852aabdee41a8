"""Ports for the processes a test starts."""

from __future__ import annotations

import socket

from chassis.testing.processes import free_port, free_ports


def test_ports_chosen_together_are_distinct_and_bindable() -> None:
    ports = free_ports(64)
    assert len(set(ports)) == 64
    listeners: list[socket.socket] = []

    def listen(port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listeners.append(sock)
        sock.bind(("127.0.0.1", port))
        sock.listen()

    try:
        for port in ports:
            listen(port)
        # Chosen while the others listen, so it is none of them.
        listen(free_port())
    finally:
        for sock in listeners:
            sock.close()

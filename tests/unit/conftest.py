"""Fixtures shared by the unit tests."""
import socket

import pytest


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on (bound, then closed): connecting to it is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port

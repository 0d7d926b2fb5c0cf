"""Fixtures shared by the unit tests."""
import socket

import pytest
from hypothesis import HealthCheck, settings

# CI runs these tests on 2 cores beside the molecule lanes. There a correct example can take longer than
# hypothesis's 200 ms deadline (it then reports the test as Flaky) or its data generation can trip the too_slow
# health check: the property tests assert results, not time.
settings.register_profile("ferry", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ferry")


@pytest.fixture
def closed_port():
    """A loopback port nothing listens on: connecting to it is refused. The socket stays bound, not listening,
    for the whole test, so no server of another test (xdist runs two at once) can be given the same port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()

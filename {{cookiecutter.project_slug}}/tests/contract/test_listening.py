"""The listening socket `serve` binds before anything else (sagemaker_contract.listening)."""

import socket

import pytest

from sagemaker_contract import listening


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def nothing_left_bound():
    yield
    leftover = listening._early
    listening._early = None
    if leftover is not None:
        leftover.close()


def test_the_early_socket_accepts_connections_before_any_server_runs():
    port = free_port()
    listening.listen_early({"SAGEMAKER_BIND_TO_PORT": str(port)})
    # Nothing calls accept(): the kernel completes the handshake and queues the connection.
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    taken = listening.take(port)
    try:
        assert taken.getsockname()[1] == port
        connection, _ = taken.accept()  # the queued connection is there for the server
        connection.close()
    finally:
        taken.close()


def test_take_binds_a_new_socket_when_none_was_bound_early_or_the_port_changed():
    first, second = free_port(), free_port()
    listening.listen_early({"SAGEMAKER_BIND_TO_PORT": str(first)})
    taken = listening.take(second)
    try:
        assert taken.getsockname()[1] == second
        with pytest.raises(OSError):  # the early socket for the other port was closed
            socket.create_connection(("127.0.0.1", first), timeout=2)
    finally:
        taken.close()


def test_unusable_settings_bind_nothing_and_are_left_for_the_server_to_report():
    listening.listen_early({"SAGEMAKER_BIND_TO_PORT": "eighty"})
    assert listening._early is None


def test_a_port_in_use_is_an_os_error_for_the_server_to_report():
    with listening.listen(free_port()) as busy:
        with pytest.raises(OSError):
            listening.take(busy.getsockname()[1])

"""Which process listens on a port (resources/ports.py) and whether a port is free, on sockets the tests open."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from resources.engines import EngineError
from resources.launchers.readiness import refuse_busy_port
from resources.ports import foreign_listeners, port_listeners

needs_proc = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads sockets' owners from Linux's /proc")

LISTENER = ("import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
            "print(s.getsockname()[1], flush=True); time.sleep(120)")

# Starts the listener as its own child, so the listener is a grandchild of the test.
PARENT_OF_LISTENER = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {LISTENER!r}])"


@pytest.fixture
def listener_tree():
    """Two process trees started here: one whose second generation listens on a port, and an unrelated sleeper.
    Yields (the listener's parent's pid, the port, the sleeper's pid)."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT_OF_LISTENER], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield parent.pid, int(parent.stdout.readline()), sleeper.pid
    finally:
        os.killpg(parent.pid, signal.SIGKILL)   # the listener with it
        sleeper.kill()
        for process in (parent, sleeper):
            process.wait()
        parent.stdout.close()


@pytest.mark.unit
@needs_proc
def test_a_socket_this_process_listens_on_is_its_own():
    with socket.socket() as own:
        own.bind(("127.0.0.1", 0))
        own.listen()
        port = own.getsockname()[1]
        assert set().union(*port_listeners("127.0.0.1", port).values()) == {os.getpid()}
        assert foreign_listeners("127.0.0.1", port, root=os.getpid()) == set()


@pytest.mark.integration
@needs_proc
def test_a_socket_is_ours_when_a_descendant_holds_it_and_not_ours_otherwise(listener_tree):
    parent, port, unrelated = listener_tree
    (holders,) = port_listeners("127.0.0.1", port).values()
    (listener,) = holders
    assert listener not in (parent, os.getpid())
    assert foreign_listeners("127.0.0.1", port, root=parent) == set()         # held by the parent's child
    assert foreign_listeners("127.0.0.1", port, root=os.getpid()) == set()    # and so in the test's tree too
    assert foreign_listeners("127.0.0.1", port, root=unrelated) == {listener}


@pytest.mark.unit
@needs_proc
@pytest.mark.parametrize(("listen_on", "connect_to", "seen"), [
    ("127.0.0.1", "127.0.0.1", True),
    ("0.0.0.0", "127.0.0.1", True),      # the wildcard address takes connections to every address
    ("127.0.0.2", "127.0.0.1", False),   # another address on the same port answers someone else
    ("127.0.0.1", "0.0.0.0", True),
])
def test_which_listeners_answer_for_an_address(listen_on, connect_to, seen):
    with socket.socket() as own:
        own.bind((listen_on, 0))
        own.listen()
        port = own.getsockname()[1]
        assert bool(port_listeners(connect_to, port)) is seen


@pytest.mark.unit
def test_a_port_whose_last_server_closed_its_connections_is_free():
    """Connections a server closed first stay in TIME_WAIT on its port; a server that set SO_REUSEADDR, as the
    engines' (uvicorn) do, leaves them bindable to the next one that sets it, so the check before the start, made
    as the engine will bind, does not call the port busy (a probe without SO_REUSEADDR would)."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()   # the server side closes first: its end waits in TIME_WAIT
            client.recv(1)
    refuse_busy_port("127.0.0.1", port)


@pytest.mark.unit
def test_a_listening_port_is_busy():
    with socket.socket() as own:
        own.bind(("127.0.0.1", 0))
        own.listen()
        port = own.getsockname()[1]
        with pytest.raises(EngineError, match=f"port {port} on 127.0.0.1 is already in use"):
            refuse_busy_port("127.0.0.1", port)

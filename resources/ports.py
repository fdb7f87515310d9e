"""Who listens on a port, from /proc: the sockets listening on a port for a host, the processes holding them, and
a process's tree. The engine resource uses it to refuse a port another server holds and to confirm that the server
that answers is the one it started. Where there is no /proc (not Linux), the answers are None: "cannot tell".
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from pathlib import Path

from assets.processes import all_processes


def _connect_addresses(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses a client of `host` connects to."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return set()
    return {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}


def _proc_net_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} prints it: 32-bit words in the machine's byte order, in hex."""
    words = [hex_address[i:i + 8] for i in range(0, len(hex_address), 8)]
    return ipaddress.ip_address(b"".join(int(word, 16).to_bytes(4, sys.byteorder) for word in words))


def _answers_for(listener: ipaddress.IPv4Address | ipaddress.IPv6Address,
                 targets: set[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    """Whether a socket listening on `listener` may take connections made to one of `targets`."""
    mapped = listener.ipv4_mapped if isinstance(listener, ipaddress.IPv6Address) else None
    return (listener.is_unspecified or not targets or any(t.is_unspecified for t in targets)
            or listener in targets or mapped in targets)


def _listening_inodes(host: str, port: int) -> set[int] | None:
    """The inodes of the sockets listening on `port` for connections to `host`; None without /proc/net/tcp."""
    targets = _connect_addresses(host)
    inodes: set[int] = set()
    readable = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            address, _, local_port = local.partition(":")
            if state == "0A" and int(local_port, 16) == port and inode and _answers_for(
                    _proc_net_address(address), targets):   # 0A: LISTEN
                inodes.add(inode)
    return inodes if readable else None


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _socket_holders(inodes: set[int]) -> dict[int, set[int]]:
    """For each socket inode, the processes that hold it open (those whose /proc/PID/fd this user may read)."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    holders: dict[int, set[int]] = {inode: set() for inode in inodes}
    for pid in _pids():
        try:
            descriptors = os.scandir(f"/proc/{pid}/fd")
        except OSError:
            continue
        with descriptors:
            for descriptor in descriptors:
                try:
                    inode = wanted.get(os.readlink(descriptor.path))
                except OSError:
                    continue
                if inode is not None:
                    holders[inode].add(pid)
    return holders


def port_listeners(host: str, port: int) -> dict[int, set[int]] | None:
    """The sockets listening on `port` for connections to `host`, each (by inode) with the processes that hold
    it, as far as this user can see them; None where /proc cannot tell (not Linux)."""
    inodes = _listening_inodes(host, port)
    return None if inodes is None else _socket_holders(inodes)


def process_tree(root: int) -> set[int]:
    """`root` and every live process descended from it, from the parent of each process in /proc/PID/stat."""
    children: dict[int, list[int]] = {}
    for stat in all_processes():
        children.setdefault(stat.parent, []).append(stat.pid)
    tree, frontier = {root}, [root]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in tree:
                tree.add(child)
                frontier.append(child)
    return tree


def _in_our_pid_namespace(pid: int) -> bool:
    """Whether `pid` runs in this process's PID namespace (not in a container started by, say, `docker run`)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def foreign_listeners(host: str, port: int, root: int) -> set[int] | None:
    """The processes outside `root`'s tree that hold a socket listening on `port` for `host`, where no process of
    the tree holds it too: empty when every listener is ours. None when that cannot be told: no /proc, no listener
    seen, or none whose holder this user may see (another user's, or in a container: another PID namespace)."""
    listeners = port_listeners(host, port)
    if not listeners:
        return None
    tree = process_tree(root)
    foreign = {pid for holders in listeners.values() if not holders & tree
               for pid in holders if _in_our_pid_namespace(pid)}
    if not foreign and not any(holders & tree for holders in listeners.values()):
        return None
    return foreign


def describe_processes(pids: set[int]) -> str:
    """Each process as `pid 123 (python3 -m http.server 8000)`, with its command line where /proc shows it."""
    described = []
    for pid in sorted(pids):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            command = ""
        described.append(f"pid {pid} ({command.strip()})" if command.strip() else f"pid {pid}")
    return ", ".join(described)


def port_holder(host: str, port: int) -> str:
    """Who listens on a port, in words, as far as /proc tells."""
    listeners = port_listeners(host, port) or {}
    holders = set().union(*listeners.values()) if listeners else set()
    if holders:
        return describe_processes(holders)
    if listeners:
        return "a process this user cannot see (another user's, or in a container)"
    return "another process"

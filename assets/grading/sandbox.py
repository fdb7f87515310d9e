"""Running model-written code: in a bubblewrap sandbox, never in this process or a plain subprocess.

What a program run here gets (see `command`):

- every namespace unshared (`bwrap --unshare-all`): no network at all (not even the host's 127.0.0.1), its own
  process ids (it cannot see or signal anything outside), its own user, IPC and hostname;
- a read-only /usr (the system Python and its standard library) and nothing else of the host: not the project,
  not the home directory, not the warehouse, not /etc; a fresh tmpfs of bounded size at /tmp, its only writable
  place and its working directory; a new terminal session and a cleared environment;
- resource limits set by `prlimit` before the sandbox starts: CPU seconds, address space, processes, file size,
  open files, no core dumps; as root it runs as an unprivileged user id of its own (`setpriv`), so the
  process limit binds it (root ignores RLIMIT_NPROC) and only it;
- a wall-clock timeout and an output cap, after which the whole process group is killed; bwrap's
  `--die-with-parent` and the process namespace take every process the program started with it.

Where bubblewrap is missing, `check_sandbox` says so with the command that installs it, and nothing runs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from assets.processes import signal_group, start_in_own_group, stop_process_group

SYSTEM_PYTHON = "/usr/bin/python3"
INSTALL_HINT = "apt-get install bubblewrap (Debian, Ubuntu; `make` does it when run as root)"
# Unprivileged user ids for sandboxed programs run by root, one per run, so that the process limit of one program
# never starves another's (RLIMIT_NPROC counts every process of the user id).
SANDBOX_UID_BASE = 200_000


class SandboxUnavailableError(RuntimeError):
    """The sandbox cannot run here; the message says what to install or fix."""


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0              # the whole run, start to end
    cpu_s: int = 10                   # CPU seconds (RLIMIT_CPU)
    memory_bytes: int = 1 << 30       # address space (RLIMIT_AS): a MemoryError beyond it
    processes: int = 16               # processes and threads of the sandbox's user id (RLIMIT_NPROC)
    file_bytes: int = 16 << 20        # the largest file it may write (RLIMIT_FSIZE)
    open_files: int = 64              # RLIMIT_NOFILE
    tmpfs_bytes: int = 64 << 20       # the size of its /tmp
    output_bytes: int = 64 << 10      # stdout and stderr each; beyond it the program is stopped


@dataclass(frozen=True)
class Outcome:
    exit_code: int | None             # None when killed by a signal
    signal: int | None                # the signal that ended it, if one did
    timed_out: bool                   # the wall-clock timeout stopped it
    output_exceeded: bool             # it wrote more than output_bytes to stdout or stderr and was stopped
    stdout: str
    stderr: str
    wall_s: float


def _tools() -> dict[str, str | None]:
    return {name: shutil.which(name) for name in ("bwrap", "prlimit", "setpriv")}


def check_sandbox(python: str = SYSTEM_PYTHON) -> None:
    """Raise SandboxUnavailableError unless a program can run sandboxed here: bwrap, prlimit and (as root) setpriv
    are installed, the Python to run exists, and a trivial program runs inside."""
    tools = _tools()
    if not tools["bwrap"]:
        raise SandboxUnavailableError(f"bubblewrap (bwrap) is not installed, and model-written code never runs without "
                                 f"it; install it: {INSTALL_HINT}")
    missing = [name for name in ("prlimit", "setpriv") if not tools[name]]
    if missing:
        raise SandboxUnavailableError(f"{', '.join(missing)} not found; they come with util-linux (apt-get install "
                                 "util-linux)")
    if not Path(python).is_file():
        raise SandboxUnavailableError(f"{python} does not exist: the sandbox runs programs with the system's Python "
                                 "(apt-get install python3-minimal)")
    outcome = run_sandboxed("print('ok')", Limits(wall_s=30), python=python)
    if outcome.exit_code != 0 or outcome.stdout.strip() != "ok":
        raise SandboxUnavailableError(f"bubblewrap is installed but a trivial program failed inside it (exit "
                                 f"{outcome.exit_code}, signal {outcome.signal}): {outcome.stderr.strip()[-500:]}; "
                                 "user namespaces may be disabled (sysctl user.max_user_namespaces)")


def command(limits: Limits, python: str = SYSTEM_PYTHON, uid: int | None = None) -> list[str]:
    """The argv that runs `python -I -` (the program on stdin) in the sandbox under `limits`."""
    tools = _tools()
    argv = [tools["prlimit"] or "prlimit", f"--cpu={limits.cpu_s}", f"--as={limits.memory_bytes}",
            f"--fsize={limits.file_bytes}", f"--nofile={limits.open_files}", "--core=0"]
    if uid is not None:
        argv += [f"--nproc={limits.processes}", "--", tools["setpriv"] or "setpriv", f"--reuid={uid}",
                 f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
    argv += ["--", tools["bwrap"] or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
             "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):   # merged /usr: the top-level names are links into it
        target = Path("/") / name
        if target.is_symlink():
            argv += ["--symlink", os.readlink(target), f"/{name}"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmpfs_bytes), "--tmpfs", "/tmp",
             "--chdir", "/tmp", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
             "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--", python, "-I", "-"]
    return argv


def _sandbox_uid() -> int | None:
    """As root: a fresh unprivileged user id for this run (see SANDBOX_UID_BASE), drawn at random from a billion:
    RLIMIT_NPROC counts every task of a user id, zombies included, and the namespace's init lingers as a zombie
    until the host's init reaps it (a container's may take seconds), so ids are not reused. Otherwise None: the
    sandbox runs as the calling user, whose other processes then share the process limit."""
    return SANDBOX_UID_BASE + secrets.randbelow(1 << 30) if os.geteuid() == 0 else None


def run_sandboxed(program: str, limits: Limits | None = None, python: str = SYSTEM_PYTHON) -> Outcome:
    """Run `program` (Python source, fed on stdin) in the sandbox and return how it ended and what it printed
    (each stream cut to limits.output_bytes)."""
    limits = limits or Limits()
    started = time.monotonic()
    # bwrap's --die-with-parent and the process namespace take the program with this process.
    process = start_in_own_group(command(limits, python, _sandbox_uid()), die_with_parent=False,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    exceeded = threading.Event()
    captured: dict[str, bytes] = {}

    def read(name: str, stream) -> None:
        kept = bytearray()
        while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
            room = limits.output_bytes - len(kept)
            kept += chunk[:max(room, 0)]
            if len(chunk) > room:
                exceeded.set()
                # prlimit, setpriv and bwrap exec one another in one process, the group's leader; bwrap's
                # --die-with-parent and the process namespace end everything inside with it.
                signal_group(process.pid, signal.SIGKILL)
                break
        captured[name] = bytes(kept)

    readers = [threading.Thread(target=read, args=(name, stream), daemon=True)
               for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))]
    for reader in readers:
        reader.start()
    try:
        process.stdin.write(program.encode("utf-8", "surrogatepass"))
        process.stdin.close()
    except BrokenPipeError:   # it ended (or was stopped) before reading all of its program
        pass
    # It runs until it ends or its wall time is up; then whatever is left of its group is killed.
    timed_out = not stop_process_group(process, limits.wall_s, terminate=False)
    for reader in readers:
        reader.join(timeout=5)
    code = process.returncode
    return Outcome(exit_code=code if code >= 0 else None, signal=-code if code < 0 else None,
                   timed_out=timed_out, output_exceeded=exceeded.is_set(),
                   stdout=captured.get("stdout", b"").decode("utf-8", "replace"),
                   stderr=captured.get("stderr", b"").decode("utf-8", "replace"),
                   wall_s=time.monotonic() - started)

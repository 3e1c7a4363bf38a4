"""The store daemon: listeners and serial lanes in, central and the edge out.

Start-up order: data directory, the listeners' ports bound (not yet accepting: so that the
embedded central's ephemeral port can never take one), embedded central (if configured), the
answer journal, the edge cache and its sync and upload workers, then the lanes — so that no
register is accepted before its answers can be kept. Shutdown reverses it; SIGTERM and SIGINT
stop it gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
import zoneinfo
from collections.abc import Callable
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapter.config import Config
from adapter.edge import EdgeRuntime
from adapter.journal import AnswerJournal
from adapter.lanes import LanePolicy, Lanes
from adapter.metrics import DaemonMetrics, Readings
from adapter.outputs import LaneOutputs
from adapter.preflight import DataDirLock, check_data_files
from adapter.router import EdgeBackend, Router
from adapter.upstream import CentralClient, open_channel
from drivers.base import Channel, Framing
from drivers.channel import NoticeCallback, TraceCallback
from drivers.registry import make_framing
from drivers.tcp import parse_address, serve_tcp
from drivers.trace import SOCKET_NAME, TraceError, TraceHub
from offline.breaker import BreakerState, CircuitBreaker
from offline.sync import SyncResult
from tillgate import systemd
from tillgate.errors import ConfigError, DeviceError, StartupError

log = structlog.get_logger("tillgate.daemon")

PROBE_INTERVAL_S = 0.5
#: how often central's health is checked while calls go to it, for the mode ping reports
LIVENESS_INTERVAL_S = 2.0
SERIAL_REOPEN_S = 2.0


class Daemon:
    """One store's tillgate, configured by :class:`Config`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.listen_addresses: list[str] = []
        self._servers: list[asyncio.Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._embedded: Any = None
        self._client: CentralClient | None = None
        self._journal: AnswerJournal | None = None
        self.edge: EdgeBackend | None = None
        self.edge_runtime: EdgeRuntime | None = None
        self.router: Router | None = None
        self.lanes: Lanes | None = None
        self.metrics: DaemonMetrics | None = None
        self.outputs: LaneOutputs | None = None
        self.trace: TraceHub | None = None
        self._stop = asyncio.Event()
        self._lock: DataDirLock | None = None

    async def start(self) -> None:
        cfg = self.config
        check_data_files(cfg, central=True)
        for number, listener in enumerate(cfg.listeners):
            _framing_works(f"listener[{number}].framing", listener.framing)
        for number, lane in enumerate(cfg.lanes):
            if lane.serial is not None:
                _framing_works(f"lane[{number}].framing", lane.framing)
        self._lock = DataDirLock(cfg.data_dir)
        await self._bind_listeners()
        tz = zoneinfo.ZoneInfo(cfg.timezone)
        target = await self._start_central()
        self._client = CentralClient(
            open_channel(target, cfg.central), deadline_ms=cfg.central.deadline_ms
        )
        self._journal = AnswerJournal(cfg.journal_db, cfg.store)
        breaker = CircuitBreaker(
            failure_threshold=cfg.offline.breaker_failures,
            cooldown_s=cfg.offline.breaker_cooldown_ms / 1000,
        )
        self.edge_runtime = EdgeRuntime.build(cfg)
        self.edge = self.edge_runtime.processor
        self.router = Router(
            store=cfg.store,
            timezone=cfg.timezone,
            tz=tz,
            central=self._client,
            edge=self.edge,
            breaker=breaker,
        )
        router = self.router
        self.edge_runtime.start(
            self._client.channel,
            interval_s=cfg.sync.interval_s,
            mode=lambda: router.mode,
            breaker=breaker,
            on_synced=self._synced,
        )
        policy = LanePolicy(
            any_lane=cfg.any_lane,
            tokens={lane.id: lane.token for lane in cfg.lanes if lane.serial is None},
            serial_lanes=frozenset(lane.id for lane in cfg.lanes if lane.serial is not None),
        )
        self.metrics = self._start_metrics()
        self.outputs = LaneOutputs(cfg.lanes, journal=self._journal)
        self.trace = await self._start_trace()
        trace = self.trace
        self.lanes = Lanes(
            store=cfg.store,
            router=self.router,
            journal=self._journal,
            policy=policy,
            metrics=self.metrics,
            after_answer=self.outputs.after_answer if self.outputs else None,
            on_lane_named=(lambda peer, lane: trace.tap(peer, lane=lane)) if trace else None,
        )
        self._tasks.append(asyncio.create_task(self._probe_central(), name="central probe"))
        self._tasks.append(asyncio.create_task(self._purge_answers(), name="answer purge"))
        for server in self._servers:
            await server.start_serving()
        for lane in cfg.lanes:
            if lane.serial is not None:
                self._tasks.append(
                    asyncio.create_task(
                        self._serial_lane(lane.id, lane.serial, lane.baud, lane.framing),
                        name=f"serial lane {lane.id}",
                    )
                )
        for task in self._tasks:
            task.add_done_callback(_loud_if_dead)
        log.info(
            "ready",
            store=cfg.store,
            listen=self.listen_addresses,
            central="embedded" if cfg.central.embedded else cfg.central.url,
            config=cfg.source,
        )
        systemd.notify("READY=1")
        interval = systemd.watchdog_interval_s()
        if interval:
            self._tasks.append(asyncio.create_task(self._watchdog(interval), name="watchdog"))

    async def _serve_tcp(self, channel: Channel, *, idle_timeout_s: float) -> None:
        """One register's TCP connection, to its end; then its trace records are let go."""
        assert self.lanes is not None
        try:
            await self.lanes.serve(channel, idle_timeout_s=idle_timeout_s)
        except Exception:  # a bug, or a plug-in framing that breaks: this connection only
            log.exception("connection_failed", peer=channel.peer)
        finally:
            if self.trace is not None:
                self.trace.forget(channel.peer)

    async def _start_central(self) -> str:
        cfg = self.config
        if not cfg.central.embedded:
            return cfg.central.target
        from central.server import start_server  # noqa: PLC0415 - only the embedded mode needs central

        self._embedded = await asyncio.to_thread(
            start_server, cfg.central.db, "127.0.0.1:0", demo=cfg.central.demo
        )
        log.info("embedded_central", db=str(cfg.central.db), address=self._embedded.address)
        return str(self._embedded.address)

    def _synced(self, result: SyncResult) -> None:
        if self.metrics is not None:
            self.metrics.sync_seconds.observe(result.duration_s)

    def _start_metrics(self) -> DaemonMetrics | None:
        cfg = self.config
        if cfg.metrics is None:
            return None
        router = self.router
        assert router is not None
        metrics = DaemonMetrics()
        edge = self.edge_runtime
        assert edge is not None
        figures = edge.figures
        metrics.bind(
            Readings(
                mode=lambda: router.mode,
                breaker=lambda: router.breaker.state.value,
                outbox_depth=lambda: figures.get("outbox_depth", 0.0),
                outbox_oldest_age_s=lambda: figures.get("outbox_oldest_age_s", 0.0),
                cache_version=lambda: figures.get("cache_version", 0.0),
                cache_age_s=lambda: figures.get("cache_age_s", 0.0),
            )
        )
        host, port = parse_address(cfg.metrics.address)
        try:
            bound = metrics.serve(host, port)
        except OSError as exc:
            raise StartupError(
                f"metrics.address {cfg.metrics.address}: cannot listen: {exc.strerror or exc}"
            ) from exc
        log.info("metrics", address=f"{host}:{bound}")
        return metrics

    async def _probe_central(self) -> None:
        """Keeps the daemon's mode true without register traffic: a health check every
        :data:`LIVENESS_INTERVAL_S` while the breaker is closed (so ``ping`` says ``offline``
        soon after central goes, and ``online`` again soon after a failed call once it is
        back), and one per cool-down while it is open, which lets it close by itself."""
        assert self.router is not None
        assert self._client is not None
        router = self.router
        breaker = router.breaker
        stub = health_pb2_grpc.HealthStub(self._client.channel)
        checked_at = -LIVENESS_INTERVAL_S  # the first check right after start
        while True:
            await asyncio.sleep(PROBE_INTERVAL_S)
            now = time.monotonic()
            if breaker.state is BreakerState.CLOSED:
                if now - checked_at < LIVENESS_INTERVAL_S:
                    continue
            elif not breaker.allow(now):
                continue
            checked_at = now
            try:
                await stub.Check(
                    health_pb2.HealthCheckRequest(service=""),
                    timeout=self.config.central.deadline_ms / 1000,
                )
            except grpc.aio.AioRpcError as exc:
                was_online = router.mode == "online"
                router.central_lost()
                if was_online or breaker.state is not BreakerState.CLOSED:
                    log.info("central_probe_failed", code=exc.code().name,
                             error=exc.details(), breaker=breaker.state.value)  # fmt: skip
            else:
                was_online = router.mode == "online"
                router.central_back()
                if not was_online and router.mode == "online":
                    log.info("central_back", breaker=breaker.state.value)

    async def _bind_listeners(self) -> None:
        """Bind every listener's port, accepting nothing until :meth:`start` is done."""
        for number, listener in enumerate(self.config.listeners):
            host, port = parse_address(listener.address)
            try:
                server = await serve_tcp(
                    host,
                    port,
                    _framing_factory(listener.framing),
                    functools.partial(self._serve_tcp, idle_timeout_s=listener.idle_timeout_s),
                    **self._trace_callbacks(listener.framing),
                    start_serving=False,
                )
            except OSError as exc:  # in use, not an address of this host, unknown host name
                raise StartupError(
                    f"listener[{number}].address {listener.address}: cannot listen: "
                    f"{exc.strerror or exc}"
                ) from exc
            self._servers.append(server)
            for sock in server.sockets:
                name = sock.getsockname()
                self.listen_addresses.append(f"{name[0]}:{name[1]}")

    def _trace_callbacks(self, framing: str) -> dict[str, Any]:
        """``serve_tcp``'s per-connection trace callbacks: the trace hub's taps when it runs
        (looked up per connection: the ports are bound before the hub starts)."""

        def trace_for(peer: str) -> TraceCallback | None:
            return self.trace.tap(peer, framing).trace if self.trace is not None else None

        def notice_for(peer: str) -> NoticeCallback | None:
            return self.trace.tap(peer, framing).on_notice if self.trace is not None else None

        return {"trace_for": trace_for, "notice_for": notice_for}

    async def _start_trace(self) -> TraceHub | None:
        """The trace socket ``tillgate sniff`` reads; the daemon runs without it if it cannot."""
        hub = TraceHub(self.config.data_dir / SOCKET_NAME)
        try:
            await hub.start()
        except TraceError as exc:
            log.warning("trace_unavailable", error=str(exc))
            return None
        return hub

    async def _purge_answers(self) -> None:
        """Answers older than 48 hours are never returned; forget them at start and daily."""
        assert self._journal is not None
        while True:
            forgotten = self._journal.purge()
            if forgotten:
                log.info("answers_purged", answers=forgotten)
            await asyncio.sleep(24 * 3600)

    async def _serial_lane(self, lane_id: str, url: str, baud: int, framing: str) -> None:
        """Serve a serial lane for the daemon's life: its port is opened again after it
        closes or fails, and a failure of the lane itself (a bug, a driver that breaks) is
        logged loudly with the lane and its traceback, and the lane started again."""
        while True:
            try:
                if not await self._serial_lane_once(lane_id, url, baud, framing):
                    return
            except Exception:
                log.exception("lane_failed", lane=lane_id, port=url, framing=framing)
            await asyncio.sleep(SERIAL_REOPEN_S)

    async def _serial_lane_once(self, lane_id: str, url: str, baud: int, framing: str) -> bool:
        """Open the port and serve it until it closes; False when the daemon is stopping."""
        from drivers.serial import open_serial_channel  # noqa: PLC0415 - pyserial only for serial lanes

        assert self.lanes is not None
        core = _framing_factory(framing, baud=baud)()
        try:
            tap = self.trace.tap(f"serial:{url}", framing, lane_id) if self.trace else None
            channel: Channel = await open_serial_channel(
                url,
                baud,
                core,
                trace=tap.trace if tap else None,
                on_notice=tap.on_notice if tap else None,
            )
        except (DeviceError, OSError) as exc:
            log.warning("serial_open_failed", lane=lane_id, port=url, error=str(exc))
            return True
        log.info("serial_lane_open", lane=lane_id, port=url, baud=baud, framing=framing)
        try:
            await self.lanes.serve(channel, fixed_lane=lane_id)
        finally:
            await channel.close()
        if self._stop.is_set():  # closed by the daemon stopping: do not open it again
            return False
        log.warning("serial_lane_closed", lane=lane_id, port=url)
        return True

    async def _watchdog(self, interval: float) -> None:
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        systemd.notify("STOPPING=1")
        for server in self._servers:
            server.close()
        if self.lanes is not None:
            for session in list(self.lanes.sessions):
                await session.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.outputs is not None:
            await self.outputs.drain()
        if self.trace is not None:
            await self.trace.close()
        if self.edge_runtime is not None:
            await self.edge_runtime.stop()
        if self._client is not None:
            await self._client.close()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop, 2.0)
        if self._journal is not None:
            self._journal.close()
        if self.metrics is not None:
            self.metrics.stop()
        if self._lock is not None:
            self._lock.release()
        log.info("stopped")


def _framing_works(key: str, name: str) -> None:
    """A framing the configuration names can be made (its plug-in may have gone since the
    configuration was checked): the daemon refuses to start, naming the key, rather than fail
    each connection."""
    try:
        make_framing(name)
    except ConfigError as exc:
        raise StartupError(f"{key}: {exc.message}") from exc
    except Exception as exc:  # a plug-in's constructor may fail in any way
        raise StartupError(f"{key}: framing {name!r} cannot be made: {exc!r}") from exc


def _loud_if_dead(task: asyncio.Task[None]) -> None:
    """A daemon task must run as long as the daemon: one that ends with an exception is
    logged as an error with its name and traceback, never lost."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("task_failed", task=task.get_name(), error=str(exc) or type(exc).__name__,
                  exc_info=exc)  # fmt: skip


def _framing_factory(name: str, *, baud: int | None = None) -> Callable[[], Framing]:
    """New framing cores by registry name. On a serial line ``link`` is told the baud rate, so
    its repeat timer starts when a frame has left the wire, not when it was queued."""
    if name == "link" and baud is not None:
        return lambda: make_framing(name, baud=baud)
    return lambda: make_framing(name)


async def run_daemon(config: Config) -> None:
    """Run until SIGTERM or SIGINT."""
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    try:
        await daemon.start()  # a start that fails half-way is undone by stop() too
        await daemon.wait_stopped()
    finally:
        await daemon.stop()

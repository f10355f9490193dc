"""``python -m airflow_provider_managed_agents.emulator --host 127.0.0.1 --port PORT [--api-key KEY]``"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from airflow_provider_managed_agents.emulator.app import Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_managed_agents.emulator",
        description=(
            "A local emulator of the Managed Agents API (deployments, runs, sessions), for DAGs offline. "
            "Prints its default world, then 'listening on http://HOST:PORT'; SIGTERM or Ctrl-C stops it. "
            "Controls under /_emulator/ (see the README)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any non-empty key)")
    parser.add_argument(
        "--state-file", type=Path, default=None, help="SQLite file that keeps state across restarts (default: none)"
    )
    parser.add_argument(
        "--max-jitter",
        type=float,
        default=10.0,
        help="upper bound of a schedule's jitter in seconds, as the API's (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    emulator = Emulator(api_key=args.api_key, max_jitter=args.max_jitter, state_file=args.state_file)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it, Nagle plus delayed ACKs add ~40 ms a request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:  # in use, or not an address of this machine: one line, not a traceback
        sock.close()
        hint = " (another process has it; --port 0 picks a free one)" if exc.errno == errno.EADDRINUSE else ""
        print(f"emulator: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}{hint}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    print(emulator.world.describe(), flush=True)
    config = uvicorn.Config(
        emulator.app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30, date_header=False
    )
    server = _QuietServer(config)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, lambda: setattr(server, "should_exit", True))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.01)
        print(f"listening on http://{host}:{port}", flush=True)
        await task

    asyncio.run(serve())
    return 0


class _QuietServer(uvicorn.Server):
    """Stops on SIGTERM/SIGINT through our handlers and exits 0, instead of uvicorn re-raising
    the signal after shutdown (which ends the process with -15)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


if __name__ == "__main__":
    sys.exit(main())

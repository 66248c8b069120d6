"""A real coturn server on loopback, configured from deploy/coturn/turnserver.conf."""

from __future__ import annotations

import asyncio
import functools
import secrets
import shutil
from pathlib import Path

from aioice import stun

from tests.support.server import ROOT, free_port

TURNSERVER = "turnserver"
CONFIG = ROOT / "deploy" / "coturn" / "turnserver.conf"


class _Catch(asyncio.DatagramProtocol):
    def __init__(self, answered: asyncio.Future[bytes]) -> None:
        self.answered = answered

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.answered.done():
            self.answered.set_result(data)

    def error_received(self, exc: Exception) -> None:
        pass  # not listening yet: the next probe tries again


class TurnServer:
    """coturn with the compose file's configuration, listening on 127.0.0.1.

    The production configuration refuses to relay toward loopback; only this
    test server allows 127.0.0.1 as a peer, because the coworking server under
    test listens there.
    """

    def __init__(self, folder: Path, allow_loopback: bool = True) -> None:
        self.folder = folder
        # False runs the production configuration unchanged.
        self.allow_loopback = allow_loopback
        self.secret = secrets.token_urlsafe(24)
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    @staticmethod
    def available() -> bool:
        return shutil.which(TURNSERVER) is not None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            TURNSERVER,
            "-c",
            str(CONFIG),
            "--log-file=stdout",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={self.port}",
            f"--static-auth-secret={self.secret}",
            "--realm=coworking.test",
            *self.loopback_options(),
            f"--pidfile={self.folder / 'turnserver.pid'}",
            f"--userdb={self.folder / 'turndb'}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read_rest())
        await asyncio.wait_for(self._wait_ready(), timeout=10)

    def loopback_options(self) -> list[str]:
        if not self.allow_loopback:
            return []
        return ["--allow-loopback-peers", "--allowed-peer-ip=127.0.0.1"]

    async def _wait_ready(self) -> None:
        """Wait until the server responds to a STUN binding request."""
        assert self.process is not None
        loop = asyncio.get_running_loop()
        while True:
            if self.process.returncode is not None:
                raise RuntimeError("turnserver exited:\n" + self.log_text())
            answered: asyncio.Future[bytes] = loop.create_future()
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Catch, answered),
                remote_addr=("127.0.0.1", self.port),
            )
            request = stun.Message(
                message_method=stun.Method.BINDING,
                message_class=stun.Class.REQUEST,
            )
            transport.sendto(bytes(request))
            try:
                await asyncio.wait_for(answered, 0.2)
                return
            except asyncio.TimeoutError:
                pass
            finally:
                transport.close()

    async def _read_rest(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            self.output.append(line.decode(errors="replace"))

    def log_text(self) -> str:
        return "".join(self.output)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=5)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            await self._reader

"""The server's container image, run with podman on the host's network."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

from tests.support.server import ServerProcess

# The image's user (see the Dockerfile's USER line) must own the data folder.
IMAGE_UID = 10001
# crun, podman's default runtime, refuses hosts with hybrid cgroups (v1
# controllers plus a v2 hierarchy), as these machines have.
PODMAN = ("podman", "--runtime=runc")


class ContainerServer(ServerProcess):
    """ServerProcess running the image named by `image` instead of the checkout.

    The container uses the host's network, which in the tests is the
    loopback-only namespace, and keeps its database in `folder`, mounted as
    /data, so the tests create rooms directly in the same file.
    """

    def __init__(self, image: str, folder: Path) -> None:
        folder.chmod(0o755)
        os.chown(folder, IMAGE_UID, IMAGE_UID)
        super().__init__(folder / "coworking.sqlite3")
        self.image = image
        self.name = f"coworking-test-{secrets.token_hex(4)}"

    def command(self) -> list[str]:
        environment = {
            "COWORKING_HOST": "127.0.0.1",
            "COWORKING_PORT": str(self.port),
            "COWORKING_ICE_HOST_ADDRESSES": "127.0.0.1",
            "COWORKING_ADMIN_TOKEN": self.admin_token,
            "COWORKING_WORKERS": str(self.workers),
            "COWORKING_ADMISSION_FAILURES": str(self.admission_failures),
        }
        return [
            *PODMAN,
            "run",
            "--rm",
            f"--name={self.name}",
            "--network=host",
            # Root on these machines lacks CAP_SYS_RESOURCE, so podman
            # cannot raise the limits to its defaults.
            "--ulimit=nofile=1024:4096",
            "--ulimit=nproc=4096:4096",
            f"--volume={self.db_path.parent}:/data",
            *(f"--env={name}={value}" for name, value in environment.items()),
            self.image,
            "serve",
        ]

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        await asyncio.wait_for(self._wait_for_links(), timeout=60)
        self._reader = asyncio.create_task(self._read_rest())

    async def stop(self) -> int:
        code = await super().stop()
        # `podman run --rm` removes the container unless it was killed.
        remover = await asyncio.create_subprocess_exec(
            *PODMAN,
            "rm",
            "--force",
            "--ignore",
            self.name,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await remover.wait()
        return code

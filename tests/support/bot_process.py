"""A scripted participant in its own process, so a test can freeze or kill it.

Run as ``python -m tests.support.bot_process URL ROOM_ID TOKEN NAME``. It joins
with a looping VP8 clip and Opus tone, prints ``joined PARTICIPANT_ID`` once the
server has answered, pings every 2 s and runs until it is stopped.
"""

from __future__ import annotations

import asyncio
import sys

import sfu.frames
import sfu.ice
from tests.support.bot import Bot, LoopTrack
from tests.support.clips import opus_packets, vp8_clip


async def run(url: str, room_id: str, token: str, name: str) -> None:
    sfu.frames.install_passthrough()
    sfu.ice.set_host_addresses(["127.0.0.1"])
    bot = Bot(
        url,
        room_id,
        token,
        name,
        audio=LoopTrack("audio", opus_packets(seconds=1.0), 0.02),
        video=LoopTrack("video", vp8_clip(frames=60), 1 / 30),
    )
    await bot.join()
    bot.keepalive(interval=2.0)
    print(f"joined {bot.id}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:5]))

"""Process-wide counters of the forwarding path."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Counters:
    passthrough_decoders: int = 0
    encode_attempts: int = 0
    frames_received: int = 0
    frames_forwarded: int = 0
    frames_dropped: int = 0
    rtp_packets_forwarded: int = 0
    rtp_bytes_forwarded: int = 0
    keyframe_requests: int = 0
    retransmissions: int = 0
    forwarders: int = 0
    peer_connections: int = 0
    trickled_candidates: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


counters = Counters()

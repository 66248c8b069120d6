"""Which subscriber receives which publisher: the media side of one room."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .peer import Peer

logger = logging.getLogger(__name__)


class Router:
    """Points every peer's receive slots at the other peers' forwarders.

    ``on_tracks_changed`` is called with each peer whose slot assignment
    changed, so that the signalling layer can send it the new track map.
    """

    def __init__(self, room_id: str, on_tracks_changed: Callable[[Peer], None]) -> None:
        self.room_id = room_id
        self.peers: dict[str, Peer] = {}
        self._on_tracks_changed = on_tracks_changed

    def add(self, peer: Peer) -> None:
        """Start forwarding between ``peer`` and every peer already here."""
        changed = {peer}
        for other in self.peers.values():
            if self._link(other, peer):
                changed.add(peer)
            if self._link(peer, other):
                changed.add(other)
        self.peers[peer.id] = peer
        for each in changed:
            self._on_tracks_changed(each)

    def remove(self, peer_id: str) -> Peer | None:
        """Stop forwarding to and from a peer; the caller closes it."""
        peer = self.peers.pop(peer_id, None)
        if peer is None:
            return None
        for slot in peer.slots:
            slot.audio.detach()
            slot.video.detach()
            slot.publisher_id = None
        for other in self.peers.values():
            slot = other.slot_of(peer_id)
            if slot is None:
                continue
            slot.audio.detach()
            slot.video.detach()
            slot.publisher_id = None
            self._on_tracks_changed(other)
        return peer

    def _link(self, publisher: Peer, subscriber: Peer) -> bool:
        slot = subscriber.free_slot()
        if slot is None:
            logger.warning(
                "x room %s: %r has no free receive slot for %r",
                self.room_id,
                subscriber,
                publisher,
            )
            return False
        slot.publisher_id = publisher.id
        audio = publisher.forwarders.get("audio")
        video = publisher.forwarders.get("video")
        if audio is not None:
            slot.audio.attach(audio)
        if video is not None:
            slot.video.attach(video)
        return True

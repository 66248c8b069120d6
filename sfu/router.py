"""Slot assignment between the peers of one room: who receives whose media."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .peer import Peer

logger = logging.getLogger(__name__)


class Router:
    """Points every peer's receive slots at the other peers' forwarders.

    ``on_tracks_changed`` is called with each peer whose slot assignment
    changed, so that the signalling layer can send it the new track map.
    ``on_slots_needed`` is called with a peer and the number of publishers
    waiting for a free slot of it. The peer is expected to offer more slots,
    and :meth:`fill` then assigns them.
    """

    def __init__(
        self,
        room_id: str,
        on_tracks_changed: Callable[[Peer], None],
        on_slots_needed: Callable[[Peer, int], None],
    ) -> None:
        self.room_id = room_id
        self.peers: dict[str, Peer] = {}
        self._on_tracks_changed = on_tracks_changed
        self._on_slots_needed = on_slots_needed
        # Publisher ids per subscriber id, in arrival order, that found no
        # free slot.
        self._waiting: dict[str, list[str]] = {}
        # Group of each peer that is in one. Peers receive each other's
        # media only when their groups are equal, peers in no group included.
        self._groups: dict[str, str] = {}

    def add(self, peer: Peer) -> None:
        """Start forwarding between ``peer`` and every peer already here."""
        changed = {peer}
        for other in self.peers.values():
            if not self.linked(peer.id, other.id):
                continue
            self._link(other, peer)
            if self._link(peer, other):
                changed.add(other)
        self.peers[peer.id] = peer
        for each in changed:
            self._on_tracks_changed(each)
        for each in list(self.peers.values()):
            self._request_slots(each)

    def fill(self, peer: Peer) -> None:
        """Give publishers waiting for ``peer``'s slots the slots it now has."""
        waiting = self._waiting.pop(peer.id, [])
        for publisher_id in waiting:
            publisher = self.peers.get(publisher_id)
            if (
                publisher is not None
                and peer.slot_of(publisher_id) is None
                and self.linked(publisher_id, peer.id)
            ):
                self._link(publisher, peer)
        self._on_tracks_changed(peer)
        self._request_slots(peer)

    def remove(self, peer_id: str) -> Peer | None:
        """Stop forwarding to and from a peer; the caller closes it."""
        peer = self.peers.pop(peer_id, None)
        if peer is None:
            return None
        self._waiting.pop(peer_id, None)
        self._groups.pop(peer_id, None)
        for slot in peer.slots:
            slot.audio.detach()
            slot.video.detach()
            slot.publisher_id = None
        for other in self.peers.values():
            waiting = self._waiting.get(other.id)
            if waiting and peer_id in waiting:
                waiting.remove(peer_id)
            slot = other.slot_of(peer_id)
            if slot is None:
                continue
            slot.audio.detach()
            slot.video.detach()
            slot.publisher_id = None
            if waiting:
                self._link(self.peers[waiting.pop(0)], other)
            self._on_tracks_changed(other)
        return peer

    def linked(self, a: str, b: str) -> bool:
        """Tell whether peers ``a`` and ``b`` receive each other's media."""
        return self._groups.get(a) == self._groups.get(b)

    def set_groups(self, groups: dict[str, str]) -> None:
        """Forward media only within groups: ``groups`` maps peer id to group.

        Peers missing from ``groups`` form the main room together. Slots whose
        publisher is now in another group are detached and reused for the
        newly visible peers, so no one renegotiates while the slots suffice.
        """
        self._groups = {k: v for k, v in groups.items() if k in self.peers}
        changed: set[Peer] = set()
        for subscriber in self.peers.values():
            for slot in subscriber.slots:
                if slot.publisher_id is None:
                    continue
                if not self.linked(slot.publisher_id, subscriber.id):
                    slot.audio.detach()
                    slot.video.detach()
                    slot.publisher_id = None
                    changed.add(subscriber)
            waiting = self._waiting.get(subscriber.id)
            if waiting:
                waiting[:] = [p for p in waiting if self.linked(p, subscriber.id)]
        for subscriber in self.peers.values():
            for publisher in self.peers.values():
                if (
                    publisher is subscriber
                    or not self.linked(publisher.id, subscriber.id)
                    or subscriber.slot_of(publisher.id) is not None
                    or publisher.id in self._waiting.get(subscriber.id, [])
                ):
                    continue
                if self._link(publisher, subscriber):
                    changed.add(subscriber)
        logger.info(
            "- room %s: %d peers in %d groups",
            self.room_id,
            len(self._groups),
            len(set(self._groups.values())),
        )
        for each in changed:
            self._on_tracks_changed(each)
        for each in list(self.peers.values()):
            self._request_slots(each)

    def show_video(self, peer: Peer, shown: bool) -> None:
        """Forward video to ``peer``, or stop while it shows none.

        A page in a background tab shows no video, so forwarding it would
        cost the server and the participant's link for nothing. Audio goes
        on either way.
        """
        peer.video_paused = not shown
        for slot in peer.slots:
            slot.video.set_paused(not shown)
        logger.debug(
            "- room %s: video to %r %s", self.room_id, peer, shown and "on" or "off"
        )

    def _link(self, publisher: Peer, subscriber: Peer) -> bool:
        slot = subscriber.free_slot()
        if slot is None:
            waiting = self._waiting.setdefault(subscriber.id, [])
            if publisher.id not in waiting:
                waiting.append(publisher.id)
            return False
        slot.publisher_id = publisher.id
        slot.video.set_paused(subscriber.video_paused)
        audio = publisher.forwarders.get("audio")
        video = publisher.forwarders.get("video")
        if audio is not None:
            slot.audio.attach(audio)
        if video is not None:
            slot.video.attach(video)
        return True

    def _request_slots(self, peer: Peer) -> None:
        waiting = self._waiting.get(peer.id)
        if waiting:
            logger.debug(
                "- room %s: %r needs %d more slots", self.room_id, peer, len(waiting)
            )
            self._on_slots_needed(peer, len(waiting))

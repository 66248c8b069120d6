/**
 * Client side of the room protocol, version 1: the signalling WebSocket, the
 * peer connection to the server and the `state` data channel. No DOM code.
 *
 * One RoomConnection lives from the Join click until `leave()` or a fatal
 * error. Inside it, each WebSocket with its peer connection is a session. A
 * lost session is replaced by a new one, which the server treats as a new
 * participant with a new id.
 */

export const PROTOCOL_VERSION = 1;

const PING_INTERVAL_MS = 5000;
const SERVER_SILENCE_LIMIT_MS = 15000;
const TICK_INTERVAL_MS = 1000;
/** Receive slots a connection offers at most, whatever the server requests. */
const MAX_SLOTS = 99;
const LEAVE_CLOSE_TIMEOUT_MS = 1000;
const RECONNECT_DELAYS_MS = [1000, 2000, 4000, 8000, 10000];

/**
 * Error codes that end the RoomConnection without a reconnect. `bad_sdp` and
 * the client's own `bad_answer` are included because a new session would send
 * the same kind of offer and fail the same way.
 */
export const FATAL_ERROR_CODES = new Set([
    'invalid_invite',
    'too_many_attempts',
    'room_full',
    'unsupported_version',
    'bad_sdp',
    'bad_answer',
    'room_locked',
    'removed',
    'slot_not_open',
    'slot_ended',
    'slot_cancelled',
]);

/**
 * @typedef {'on'|'off'|'none'} DeviceState
 * @typedef {{mic: DeviceState, camera: DeviceState, status?: string,
 *     goal?: string, profile?: object|null, background?: string}} MediaState
 *     The state a participant publishes: media and, optionally, presence.
 * @typedef {{id: string, name: string, role: 'guest'|'host',
 *     state: MediaState, version: number}} Participant
 * @typedef {{audio: MediaStreamTrack|null, video: MediaStreamTrack|null}}
 *     LocalTracks
 * @typedef {'connecting'|'connected'|'reconnecting'|'closed'} ConnectionStatus
 * @typedef {{framesDecoded: number, frameWidth: number, frameHeight: number,
 *     audioPacketsReceived: number, totalAudioEnergy: number}}
 *     ParticipantStats
 * @typedef {{participants: Object<string, ParticipantStats>,
 *     pair: string|null}} ConnectionStats
 */

/** One WebSocket and the peer connection negotiated over it. */
class Session {
    constructor() {
        /** @type {WebSocket|null} */
        this.ws = null;
        /** @type {RTCPeerConnection|null} */
        this.pc = null;
        /** @type {RTCDataChannel|null} */
        this.dc = null;
        /** @type {RTCRtpSender|null} */
        this.audioSender = null;
        /** @type {RTCRtpSender|null} */
        this.videoSender = null;

        /** Receive slots (audio and video pairs) offered so far. */
        this.slotCount = 0;
        /** Offers run one after another; this is the latest in the chain. */
        /** @type {Promise<void>} */
        this.negotiation = Promise.resolve();
        /** Whether the first offer went out, so candidates may follow it. */
        this.offerSent = false;
        /** Candidate messages gathered before the first offer went out. */
        /** @type {object[]} */
        this.earlyCandidates = [];
        /** Resolves the pending offer once its answer is applied. */
        /** @type {(() => void)|null} */
        this.answered = null;

        /** Data-channel messages waiting for the channel to open. */
        /** @type {object[]} */
        this.pending = [];
        this.welcomed = false;
        this.closed = false;
        /** @type {string|null} */
        this.participantId = null;

        /** Participant id per receive-slot mid, from the last `tracks`. */
        /** @type {Map<string, string|null>} */
        this.slotOwners = new Map();
        /** Remote track per mid, from `ontrack`. */
        /** @type {Map<string, MediaStreamTrack>} */
        this.tracksByMid = new Map();
        /** Reported stream per participant. `key` lists its track ids. */
        /** @type {Map<string, {key: string, stream: MediaStream}>} */
        this.streams = new Map();

        this.lastMessageAt = performance.now();
        this.lastPingAt = 0;
        /** @type {number|undefined} */
        this.tickTimer = undefined;
        /** @type {number|undefined} */
        this.leaveTimer = undefined;
    }
}

/**
 * Connection to one room: joins, negotiates media, relays state and
 * reconnects after a lost session.
 *
 * Set the `on*` callbacks before calling `start()`.
 */
export class RoomConnection {
    /**
     * @param {{room: string, token: string, name: string,
     *     booking?: {id: string, secret: string}|null,
     *     getLocalTracks: () => LocalTracks, url?: string,
     *     clientKey?: string}} options
     *     `getLocalTracks` is called at the start of every session.
     *     `url` defaults to `/ws` on the page's host. `clientKey` is the
     *     browser's random key, sent with join.
     */
    constructor(options) {
        this.clientKey = options.clientKey ?? null;
        this.room = options.room;
        this.token = options.token;
        this.name = options.name;
        /** The booking to mark attended, sent in `join`. */
        this.booking = options.booking ?? null;
        this.getLocalTracks = options.getLocalTracks;
        this.url = options.url ?? defaultSocketUrl();

        /** @type {(welcome: object) => void} */
        this.onwelcome = () => {};
        /**
         * A notice from the server to show, such as the `closing` message
         * before a restart. The connection goes on by itself.
         * @type {(text: string) => void}
         */
        this.onnotice = () => {};
        /**
         * ICE servers from the latest `welcome`, TURN credentials included.
         * @type {RTCIceServer[]}
         */
        this.iceServers = [];
        /** @type {(participant: Participant) => void} */
        this.onparticipant = () => {};
        /**
         * Reason is the server's (`leave`, `closed`, `timeout`), or `missing`
         * when a roster after a reconnect no longer lists the participant.
         * @type {(participantId: string, reason: string) => void}
         */
        this.onleft = () => {};
        /** @type {(id: string, state: MediaState, version: number) => void} */
        this.onstate = () => {};
        /** @type {(id: string, stream: MediaStream|null) => void} */
        this.onstream = () => {};
        /** @type {(code: string, message: string) => void} */
        this.onerror = () => {};
        /** @type {(status: ConnectionStatus) => void} */
        this.onstatus = () => {};
        /**
         * Data-channel messages this class does not handle itself, such as
         * chat, lock and muted messages; called after `handleData` handlers.
         * @type {(message: any) => void}
         */
        this.ondata = () => {};
        /**
         * Handlers of data-channel message types this class does not handle
         * itself, such as `clock` and `coffee`, by type. See `handleData`.
         * @type {Map<string, Array<(message: any) => void>>}
         */
        this.dataHandlers = new Map();

        /** @type {Session|null} */
        this.session = null;
        /** Remote participants of the current session, by id. */
        /** @type {Map<string, Participant>} */
        this.participants = new Map();
        /**
         * Ids this connection held in earlier sessions. The server may still
         * list an old session until it times out, and it must not show up as
         * a stranger.
         * @type {Set<string>}
         */
        this.ownIds = new Set();
        /** @type {MediaState|null} */
        this.state = null;
        this.stateVersion = 0;
        /** Whether this page shows remote video; false in a hidden tab. */
        this.videoShown = true;
        this.reconnectAttempt = 0;
        /** @type {number|undefined} */
        this.reconnectTimer = undefined;
        this.started = false;
        this.stopped = false;
    }

    /** Participant id of the current session, or null before `welcome`. */
    get participantId() {
        return this.session?.participantId ?? null;
    }

    /** Opens the first session. */
    start() {
        if (this.started) {
            return;
        }
        this.started = true;
        this.onstatus('connecting');
        this.#openSession();
    }

    /**
     * Sends the participant's own media state with the next version number,
     * now or when the data channel opens. Each new session gets it again.
     * @param {MediaState} state
     */
    setState(state) {
        if (this.stopped) {
            return;
        }
        this.state = {...state};
        if (this.session && !this.session.closed) {
            this.#sendData(this.session, this.#nextStateMessage());
        }
    }

    /**
     * Sends a message on the data channel of the current session, now or
     * when the channel opens. Nothing is sent again after a reconnect.
     * @param {object} message
     */
    sendData(message) {
        if (this.stopped || !this.session || this.session.closed) {
            return;
        }
        this.#sendData(this.session, message);
    }

    /**
     * Replaces the track on the own audio or video sender without
     * renegotiation. `null` stops sending. Later sessions read the track from
     * `getLocalTracks`, so this only affects the current one.
     * @param {'audio'|'video'} kind
     * @param {MediaStreamTrack|null} track
     * @returns {Promise<void>}
     */
    async replaceTrack(kind, track) {
        const session = this.session;
        if (!session || session.closed) {
            return;
        }
        const sender = kind === 'audio' ? session.audioSender : session.videoSender;
        if (!sender) {
            return;
        }
        try {
            await sender.replaceTrack(track);
        } catch (error) {
            console.warn(`replaceTrack(${kind}) failed:`, error);
        }
    }

    /**
     * Sends `leave` and closes the connection for good. The socket is closed
     * by the server, or by this client after LEAVE_CLOSE_TIMEOUT_MS.
     */
    leave() {
        if (this.stopped) {
            return;
        }
        this.stopped = true;
        clearTimeout(this.reconnectTimer);
        const session = this.session;
        if (session && !session.closed && isOpen(session.ws)) {
            this.#send(session, {type: 'leave'});
            session.leaveTimer = setTimeout(
                () => this.#closeSession(session), LEAVE_CLOSE_TIMEOUT_MS);
        } else if (session) {
            this.#closeSession(session);
        }
        this.onstatus('closed');
    }

    /**
     * Collects receive statistics per remote participant and the selected
     * ICE candidate pair of the current session.
     *
     * NOTE: counters belong to the receive slot. When the server moves a slot
     * to another participant, that participant inherits the earlier counts.
     * @returns {Promise<ConnectionStats>}
     */
    async collectStats() {
        /** @type {ConnectionStats} */
        const result = {participants: {}, pair: null};
        const session = this.session;
        if (!session || !session.pc || session.closed) {
            return result;
        }
        const report = await session.pc.getStats();

        /** @type {Map<string, string>} */
        const midByTrackId = new Map();
        for (const transceiver of session.pc.getTransceivers()) {
            const track = transceiver.receiver.track;
            if (transceiver.mid !== null && track) {
                midByTrackId.set(track.id, transceiver.mid);
            }
        }
        for (const owner of session.slotOwners.values()) {
            if (owner) {
                result.participants[owner] = emptyStats();
            }
        }
        report.forEach((stat) => {
            if (stat.type !== 'inbound-rtp') {
                return;
            }
            const mid = stat.mid ?? midByTrackId.get(stat.trackIdentifier);
            const owner = mid === undefined ? null : session.slotOwners.get(mid);
            if (!owner) {
                return;
            }
            result.participants[owner] ??= emptyStats();
            addInboundStats(result.participants[owner], stat);
        });
        result.pair = describeSelectedPair(report);
        return result;
    }

    /**
     * Describes the media connection of the current session: its state and
     * the candidate types and protocol of the selected pair, which are null
     * while no pair is selected.
     * @returns {Promise<{state: string, localType: string|null,
     *     remoteType: string|null, protocol: string|null}>}
     */
    async describeMediaPath() {
        const session = this.session;
        const result = {state: 'none', localType: null, remoteType: null, protocol: null};
        if (!session || !session.pc || session.closed) {
            return result;
        }
        result.state = session.pc.connectionState;
        const report = await session.pc.getStats();
        report.forEach((stat) => {
            if (stat.type !== 'transport' || !stat.selectedCandidatePairId) {
                return;
            }
            const pair = report.get(stat.selectedCandidatePairId);
            const local = pair && report.get(pair.localCandidateId);
            const remote = pair && report.get(pair.remoteCandidateId);
            result.localType = local?.candidateType ?? null;
            result.remoteType = remote?.candidateType ?? null;
            result.protocol = local?.protocol ?? null;
        });
        return result;
    }

    /**
     * Tells the server whether to send video: a page that shows none, such
     * as a hidden tab, saves the server and its own link the cost.
     * @param {boolean} shown
     */
    setVideoShown(shown) {
        if (this.stopped || shown === this.videoShown) {
            return;
        }
        this.videoShown = shown;
        if (this.session && !this.session.closed) {
            this.#sendData(this.session, {type: 'view', video: shown});
        }
    }

    /**
     * Adds `handler` for data-channel messages of `type`, in every session.
     * Several handlers of one type run in the order they were added.
     * @param {string} type
     * @param {(message: any) => void} handler
     */
    handleData(type, handler) {
        const handlers = this.dataHandlers.get(type) ?? [];
        handlers.push(handler);
        this.dataHandlers.set(type, handlers);
    }

    /**
     * @param {'audio'|'video'} kind
     * @returns {RTCRtpSender|null} the own sender of the current session
     */
    sender(kind) {
        const session = this.session;
        if (!session || session.closed) {
            return null;
        }
        return (kind === 'audio' ? session.audioSender : session.videoSender) ?? null;
    }

    #nextStateMessage() {
        this.stateVersion += 1;
        return {type: 'state', version: this.stateVersion, state: this.state};
    }

    #openSession() {
        const session = new Session();
        this.session = session;
        if (this.state) {
            session.pending.push(this.#nextStateMessage());
        }
        if (!this.videoShown) {
            session.pending.push({type: 'view', video: false});
        }

        let ws;
        try {
            ws = new WebSocket(this.url);
        } catch (error) {
            console.warn('Could not open the WebSocket:', error);
            this.#restart(session);
            return;
        }
        session.ws = ws;
        ws.addEventListener('open', () => {
            if (session !== this.session || session.closed) {
                return;
            }
            /** @type {Record<string, unknown>} */
            const join = {
                type: 'join',
                version: PROTOCOL_VERSION,
                token: this.token,
                room: this.room,
                name: this.name,
                booking: this.booking,
            };
            if (this.clientKey) {
                join.client = this.clientKey;
            }
            this.#send(session, join);
        });
        ws.addEventListener('message', (event) => {
            this.#onSocketMessage(session, event.data);
        });
        ws.addEventListener('close', (event) => {
            this.#onSocketClose(session, event);
        });
        session.tickTimer = setInterval(
            () => this.#tick(session), TICK_INTERVAL_MS);
    }

    /**
     * Sends pings after `welcome` and replaces the session when the server
     * has been silent for too long, `pong` included.
     * @param {Session} session
     */
    #tick(session) {
        if (session !== this.session || session.closed) {
            return;
        }
        const now = performance.now();
        if (now - session.lastMessageAt > SERVER_SILENCE_LIMIT_MS) {
            console.warn(
                `No message from the server for ${SERVER_SILENCE_LIMIT_MS} ms;`
                + ' reconnecting.');
            this.#restart(session);
            return;
        }
        if (session.welcomed && isOpen(session.ws)
                && now - session.lastPingAt >= PING_INTERVAL_MS) {
            session.lastPingAt = now;
            this.#send(session, {type: 'ping'});
        }
    }

    /**
     * @param {Session} session
     * @param {unknown} data
     */
    #onSocketMessage(session, data) {
        if (session !== this.session || session.closed || this.stopped) {
            return;
        }
        session.lastMessageAt = performance.now();
        const message = parseMessage(data);
        if (!message) {
            console.warn('Ignored a WebSocket message that is not a JSON object.');
            return;
        }
        switch (message.type) {
        case 'welcome':
            this.#onWelcome(session, message).catch((error) => {
                console.error('Negotiation failed:', error);
                this.#restart(session);
            });
            break;
        case 'answer':
            this.#onAnswer(session, message);
            break;
        case 'tracks':
            this.#onTracks(session, message);
            break;
        case 'slots':
            this.#onSlots(session, message);
            break;
        case 'pong':
            break;
        case 'closing':
            this.onnotice(typeof message.message === 'string' ? message.message : '');
            break;
        case 'error':
            this.#onServerError(session, message);
            break;
        default:
            console.warn(`Ignored a WebSocket message of unknown type "${message.type}".`);
        }
    }

    /**
     * @param {Session} session
     * @param {CloseEvent} event
     */
    #onSocketClose(session, event) {
        if (session !== this.session || session.closed) {
            return;
        }
        if (this.stopped) {
            this.#closeSession(session);
            return;
        }
        console.warn(
            `The WebSocket closed with code ${event.code}`
            + (event.reason ? ` (${event.reason})` : '') + '; reconnecting.');
        this.#restart(session);
    }

    /**
     * @param {Session} session
     * @param {any} message
     */
    #onServerError(session, message) {
        const code = typeof message.code === 'string' ? message.code : 'unknown';
        const text = typeof message.message === 'string' ? message.message : '';
        console.warn(`Server error ${code}: ${text}`);
        if (FATAL_ERROR_CODES.has(code)) {
            this.#stop(session, code, text);
        } else {
            this.onerror(code, text);
        }
    }

    /**
     * Builds the peer connection in the order the server expects, then sends
     * the offer once ICE gathering is complete or has timed out.
     * @param {Session} session
     * @param {any} welcome
     */
    async #onWelcome(session, welcome) {
        if (session.welcomed) {
            return;
        }
        const participantId = welcome.participant?.id;
        if (typeof participantId !== 'string') {
            throw new Error('The welcome message has no participant id.');
        }
        session.welcomed = true;
        session.participantId = participantId;
        session.lastPingAt = performance.now();
        this.ownIds.add(participantId);
        this.iceServers = toIceServers(welcome.ice_servers);
        this.onwelcome(welcome);

        const pc = new RTCPeerConnection({
            iceServers: this.iceServers,
            bundlePolicy: 'max-bundle',
        });
        session.pc = pc;

        const local = this.getLocalTracks();
        const localTracks = [local.audio, local.video].filter((track) => track);
        const localStream = new MediaStream(localTracks);
        session.audioSender = pc.addTransceiver(local.audio ?? 'audio', {
            direction: 'sendonly',
            streams: [localStream],
        }).sender;
        session.videoSender = pc.addTransceiver(local.video ?? 'video', {
            direction: 'sendonly',
            streams: [localStream],
        }).sender;

        const dc = pc.createDataChannel('state', {ordered: true});
        session.dc = dc;
        dc.addEventListener('open', () => this.#flushData(session));
        dc.addEventListener('message', (event) => {
            this.#onDataMessage(session, event.data);
        });

        pc.addEventListener('track', (event) => {
            const mid = event.transceiver.mid;
            if (session.closed || mid === null) {
                return;
            }
            session.tracksByMid.set(mid, event.track);
            this.#updateStreams(session);
        });
        pc.addEventListener('connectionstatechange', () => {
            this.#onPeerState(session);
        });
        pc.addEventListener('icecandidate', (event) => {
            this.#onIceCandidate(session, event.candidate);
        });

        const slots = Number.isInteger(welcome.slots) && welcome.slots > 0
            ? welcome.slots : 0;
        session.negotiation = this.#offer(session, slots);
        await session.negotiation;
    }

    /**
     * Grows the receive slots to `slots` pairs, sends an offer and waits
     * until its answer is applied. The offer goes out before ICE gathering
     * ends; the candidates follow in `candidate` messages.
     * @param {Session} session
     * @param {number} slots
     */
    async #offer(session, slots) {
        const pc = session.pc;
        if (!pc || session.closed) {
            return;
        }
        for (; session.slotCount < slots; session.slotCount++) {
            pc.addTransceiver('audio', {direction: 'recvonly'});
            pc.addTransceiver('video', {direction: 'recvonly'});
        }
        await pc.setLocalDescription(await pc.createOffer());
        if (session.closed) {
            return;
        }
        const answered = new Promise((resolve) => {
            session.answered = () => resolve(undefined);
        });
        // Candidates gathered from now on follow in `candidate` messages.
        this.#send(session, {type: 'offer', sdp: pc.localDescription?.sdp ?? ''});
        session.offerSent = true;
        for (const candidate of session.earlyCandidates.splice(0)) {
            this.#send(session, candidate);
        }
        await answered;
    }

    /**
     * Sends a gathered ICE candidate, or the end of candidates as null.
     * @param {Session} session
     * @param {RTCIceCandidate|null} candidate
     */
    #onIceCandidate(session, candidate) {
        if (session.closed) {
            return;
        }
        const message = candidate === null
            ? {type: 'candidate', candidate: null}
            : {
                type: 'candidate',
                candidate: candidate.candidate,
                sdpMid: candidate.sdpMid,
                sdpMLineIndex: candidate.sdpMLineIndex,
            };
        if (candidate !== null && !candidate.candidate) {
            // An empty candidate string also marks the end in some browsers.
            message.candidate = null;
        }
        if (session.offerSent) {
            this.#send(session, message);
        } else {
            session.earlyCandidates.push(message);
        }
    }

    /**
     * Offers more receive slots when the server requests them, because the
     * room has more people than this connection can show.
     * @param {Session} session
     * @param {any} message
     */
    #onSlots(session, message) {
        const count = message.count;
        if (!Number.isInteger(count) || count <= 0 || count > MAX_SLOTS) {
            console.warn('Ignored a slots message with an invalid count.');
            return;
        }
        session.negotiation = session.negotiation.then(() => {
            if (count > session.slotCount) {
                return this.#offer(session, count);
            }
            return undefined;
        }).catch((error) => {
            console.error('Renegotiation failed:', error);
            this.#restart(session);
        });
    }

    /**
     * @param {Session} session
     * @param {any} message
     */
    async #onAnswer(session, message) {
        const pc = session.pc;
        if (!pc || typeof message.sdp !== 'string') {
            console.warn('Ignored an answer without a peer connection or SDP.');
            return;
        }
        try {
            await pc.setRemoteDescription({type: 'answer', sdp: message.sdp});
        } catch (error) {
            if (session.closed) {
                return;
            }
            console.error('Could not apply the answer:', error);
            this.#stop(session, 'bad_answer',
                'The server\'s answer could not be applied. '
                + 'Reload the page to try again.');
            return;
        }
        const answered = session.answered;
        session.answered = null;
        answered?.();
        this.#updateStreams(session);
    }

    /**
     * @param {Session} session
     * @param {any} message
     */
    #onTracks(session, message) {
        if (!message.mids || typeof message.mids !== 'object') {
            console.warn('Ignored a tracks message without a mids object.');
            return;
        }
        session.slotOwners = new Map();
        for (const [mid, owner] of Object.entries(message.mids)) {
            const valid = typeof owner === 'string' && !this.ownIds.has(owner);
            session.slotOwners.set(mid, valid ? owner : null);
        }
        this.#updateStreams(session);
    }

    /** @param {Session} session */
    #onPeerState(session) {
        if (session !== this.session || session.closed || this.stopped) {
            return;
        }
        const state = session.pc?.connectionState;
        if (state === 'connected') {
            this.reconnectAttempt = 0;
            this.onstatus('connected');
        } else if (state === 'failed') {
            console.warn('The peer connection failed; reconnecting.');
            this.#restart(session);
        }
    }

    /**
     * Groups the receive tracks by the participant their slot carries and
     * reports each participant whose set of tracks changed.
     * @param {Session} session
     */
    #updateStreams(session) {
        if (session.closed || !session.pc) {
            return;
        }
        /** @type {Map<string, MediaStreamTrack[]>} */
        const tracksByOwner = new Map();
        const transceivers = session.pc.getTransceivers();
        for (const [mid, owner] of session.slotOwners) {
            if (!owner) {
                continue;
            }
            const track = session.tracksByMid.get(mid)
                ?? transceivers.find((t) => t.mid === mid)?.receiver.track;
            if (!track) {
                continue;
            }
            const tracks = tracksByOwner.get(owner) ?? [];
            tracks.push(track);
            tracksByOwner.set(owner, tracks);
        }

        for (const [owner, tracks] of tracksByOwner) {
            tracks.sort((a, b) => a.kind.localeCompare(b.kind));
            const key = tracks.map((track) => track.id).join(' ');
            if (session.streams.get(owner)?.key === key) {
                continue;
            }
            const stream = new MediaStream(tracks);
            session.streams.set(owner, {key, stream});
            this.onstream(owner, stream);
        }
        for (const owner of [...session.streams.keys()]) {
            if (!tracksByOwner.has(owner)) {
                session.streams.delete(owner);
                this.onstream(owner, null);
            }
        }
    }

    /**
     * @param {Session} session
     * @param {unknown} data
     */
    #onDataMessage(session, data) {
        if (session !== this.session || session.closed || this.stopped) {
            return;
        }
        const message = parseMessage(data);
        if (!message) {
            console.warn('Ignored a data-channel message that is not a JSON object.');
            return;
        }
        switch (message.type) {
        case 'roster':
            this.#onRoster(message);
            break;
        case 'joined':
            if (isParticipant(message.participant)
                    && !this.ownIds.has(message.participant.id)) {
                this.participants.set(message.participant.id, message.participant);
                this.onparticipant(message.participant);
            }
            break;
        case 'left':
            if (typeof message.id === 'string' && this.participants.delete(message.id)) {
                this.onleft(message.id, String(message.reason ?? 'closed'));
            }
            break;
        case 'state':
            this.#onRemoteState(message);
            break;
        case 'error':
            console.warn(`Data-channel error ${message.code}: ${message.message}`);
            this.onerror(String(message.code ?? 'unknown'), String(message.message ?? ''));
            break;
        case 'muted':
            this.#onMuted(message);
            this.ondata(message);
            break;
        default:
            this.#onOtherData(message);
        }
    }

    /** @param {any} message */
    #onOtherData(message) {
        for (const handler of this.dataHandlers.get(String(message.type)) ?? []) {
            handler(message);
        }
        this.ondata(message);
    }

    /**
     * Replaces the known participants with the roster. After a reconnect,
     * participants from the earlier session that the roster lacks are
     * reported as left with reason `missing`.
     * @param {any} message
     */
    #onRoster(message) {
        if (!Array.isArray(message.participants)) {
            console.warn('Ignored a roster without a participants array.');
            return;
        }
        const listed = new Set();
        for (const participant of message.participants) {
            if (!isParticipant(participant) || this.ownIds.has(participant.id)) {
                continue;
            }
            listed.add(participant.id);
            this.participants.set(participant.id, participant);
            this.onparticipant(participant);
        }
        for (const id of [...this.participants.keys()]) {
            if (!listed.has(id)) {
                this.participants.delete(id);
                this.onleft(id, 'missing');
            }
        }
    }

    /** @param {any} message */
    #onRemoteState(message) {
        const participant = this.participants.get(message.id);
        if (!participant || !isMediaState(message.state)
                || typeof message.version !== 'number') {
            return;
        }
        if (message.version <= participant.version) {
            return;
        }
        participant.version = message.version;
        participant.state = toState(message.state);
        this.onstate(participant.id, participant.state, participant.version);
    }

    /**
     * Shows a participant the host muted with the microphone off. The version
     * stays, so their own next state still applies.
     * @param {any} message
     */
    #onMuted(message) {
        const participant = this.participants.get(message.id);
        if (participant && participant.state.mic === 'on') {
            participant.state = {...participant.state, mic: 'off'};
            this.onstate(participant.id, participant.state, participant.version);
        }
    }

    /**
     * @param {Session} session
     * @param {object} message
     */
    #send(session, message) {
        if (isOpen(session.ws)) {
            session.ws?.send(JSON.stringify(message));
        }
    }

    /**
     * @param {Session} session
     * @param {object} message
     */
    #sendData(session, message) {
        if (session.dc?.readyState === 'open') {
            session.dc.send(JSON.stringify(message));
        } else {
            session.pending.push(message);
        }
    }

    /** @param {Session} session */
    #flushData(session) {
        if (session.closed || session.dc?.readyState !== 'open') {
            return;
        }
        const pending = session.pending;
        session.pending = [];
        for (const message of pending) {
            session.dc.send(JSON.stringify(message));
        }
    }

    /**
     * Closes the session's socket and peer connection and withdraws its
     * remote streams. Safe to call more than once.
     * @param {Session} session
     */
    #closeSession(session) {
        if (session.closed) {
            return;
        }
        session.closed = true;
        clearInterval(session.tickTimer);
        clearTimeout(session.leaveTimer);
        if (session.ws && session.ws.readyState < WebSocket.CLOSING) {
            session.ws.close(1000);
        }
        session.pc?.close();
        for (const owner of session.streams.keys()) {
            if (!this.stopped) {
                this.onstream(owner, null);
            }
        }
        session.streams.clear();
    }

    /**
     * Replaces a lost session with a new one after the next backoff delay.
     * @param {Session} session
     */
    #restart(session) {
        if (session !== this.session || this.stopped) {
            return;
        }
        this.#closeSession(session);
        const delays = RECONNECT_DELAYS_MS;
        const delay = delays[Math.min(this.reconnectAttempt, delays.length - 1)];
        this.reconnectAttempt += 1;
        console.info(`Reconnecting in ${delay} ms (attempt ${this.reconnectAttempt}).`);
        this.onstatus('reconnecting');
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = setTimeout(() => {
            if (!this.stopped) {
                this.#openSession();
            }
        }, delay);
    }

    /**
     * Ends the connection for good after a fatal error.
     * @param {Session} session
     * @param {string} code
     * @param {string} message
     */
    #stop(session, code, message) {
        if (this.stopped) {
            return;
        }
        this.stopped = true;
        clearTimeout(this.reconnectTimer);
        this.#closeSession(session);
        this.onerror(code, message);
        this.onstatus('closed');
    }
}

/** @returns {string} the `/ws` URL on the page's host */
function defaultSocketUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws`;
}

/**
 * @param {WebSocket|null} ws
 * @returns {boolean}
 */
function isOpen(ws) {
    return ws !== null && ws.readyState === WebSocket.OPEN;
}

/**
 * Parses a text frame. Returns null unless it is a JSON object with a
 * string `type`.
 * @param {unknown} data
 * @returns {any}
 */
function parseMessage(data) {
    if (typeof data !== 'string') {
        return null;
    }
    let message;
    try {
        message = JSON.parse(data);
    } catch {
        return null;
    }
    if (!message || typeof message !== 'object' || Array.isArray(message)
            || typeof message.type !== 'string') {
        return null;
    }
    return message;
}

/**
 * @param {any} value
 * @returns {boolean}
 */
function isMediaState(value) {
    const states = ['on', 'off', 'none'];
    return Boolean(value) && states.includes(value.mic)
        && states.includes(value.camera);
}

/**
 * Checks the fields the client relies on. A missing version counts as 0.
 * @param {any} value
 * @returns {boolean}
 */
function isParticipant(value) {
    if (!value || typeof value.id !== 'string' || typeof value.name !== 'string') {
        return false;
    }
    if (typeof value.version !== 'number') {
        value.version = 0;
    }
    value.state = isMediaState(value.state)
        ? toState(value.state) : {mic: 'none', camera: 'none'};
    return true;
}

/**
 * Copies the known fields of a state the server relayed.
 * @param {any} value a state that passed isMediaState
 * @returns {MediaState}
 */
function toState(value) {
    /** @type {MediaState} */
    const state = {mic: value.mic, camera: value.camera};
    if (typeof value.status === 'string') {
        state.status = value.status;
    }
    if (typeof value.goal === 'string') {
        state.goal = value.goal;
    }
    if (value.profile && typeof value.profile === 'object') {
        state.profile = value.profile;
    }
    if (typeof value.background === 'string') {
        state.background = value.background;
    }
    return state;
}

/**
 * Converts `ice_servers` from `welcome` into RTCIceServer objects, dropping
 * entries without `urls`.
 * @param {unknown} servers
 * @returns {RTCIceServer[]}
 */
function toIceServers(servers) {
    if (!Array.isArray(servers)) {
        return [];
    }
    /** @type {RTCIceServer[]} */
    const result = [];
    for (const server of servers) {
        if (!server || (typeof server.urls !== 'string' && !Array.isArray(server.urls))) {
            continue;
        }
        /** @type {RTCIceServer} */
        const entry = {urls: server.urls};
        if (typeof server.username === 'string') {
            entry.username = server.username;
        }
        if (typeof server.credential === 'string') {
            entry.credential = server.credential;
        }
        result.push(entry);
    }
    return result;
}

/** @returns {ParticipantStats} */
function emptyStats() {
    return {
        framesDecoded: 0,
        frameWidth: 0,
        frameHeight: 0,
        audioPacketsReceived: 0,
        totalAudioEnergy: 0,
    };
}

/**
 * Adds one inbound-rtp report to a participant's totals.
 * @param {ParticipantStats} totals
 * @param {any} stat
 */
function addInboundStats(totals, stat) {
    if (stat.kind === 'video') {
        totals.framesDecoded += stat.framesDecoded ?? 0;
        totals.frameWidth = stat.frameWidth ?? totals.frameWidth;
        totals.frameHeight = stat.frameHeight ?? totals.frameHeight;
    } else if (stat.kind === 'audio') {
        totals.audioPacketsReceived += stat.packetsReceived ?? 0;
        totals.totalAudioEnergy += stat.totalAudioEnergy ?? 0;
    }
}

/**
 * Formats the selected candidate pair as `LOCALIP:PORT <-> REMOTEIP:PORT`.
 * @param {RTCStatsReport} report
 * @returns {string|null}
 */
function describeSelectedPair(report) {
    let pair = null;
    report.forEach((stat) => {
        if (stat.type === 'transport' && stat.selectedCandidatePairId) {
            pair = report.get(stat.selectedCandidatePairId) ?? pair;
        }
    });
    if (!pair) {
        report.forEach((stat) => {
            if (!pair && stat.type === 'candidate-pair' && stat.nominated
                    && stat.state === 'succeeded') {
                pair = stat;
            }
        });
    }
    if (!pair) {
        return null;
    }
    const local = report.get(pair.localCandidateId);
    const remote = report.get(pair.remoteCandidateId);
    if (!local || !remote) {
        return null;
    }
    return `${formatCandidate(local)} <-> ${formatCandidate(remote)}`;
}

/**
 * @param {any} candidate local-candidate or remote-candidate stats
 * @returns {string}
 */
function formatCandidate(candidate) {
    const address = candidate.address ?? candidate.ip ?? '?';
    const host = address.includes(':') ? `[${address}]` : address;
    return `${host}:${candidate.port}`;
}

/**
 * Connectivity self-test: can this browser reach the server's media directly,
 * and can it reach the TURN relay that the server hands out?
 *
 * The direct part reads the room's own peer connection: a selected candidate
 * pair without a relay candidate means media flows directly. The TURN part
 * connects two short-lived peer connections in this page to each other with
 * iceTransportPolicy "relay", so their only path runs through the TURN server
 * with the credentials from `welcome`.
 */

/** Milliseconds that the relay test waits for its data channel to open. */
const RELAY_TIMEOUT_MS = 8000;

/**
 * @typedef {'ok'|'relayed'|'failed'|'not_connected'} DirectResult
 * @typedef {'ok'|'unreachable'|'rejected'|'no_path'|'none'} TurnResult
 * @typedef {{direct: DirectResult, turn: TurnResult, lines: string[]}} CheckResult
 */

/**
 * Runs both checks and explains the results in plain words.
 * @param {import('./protocol.js').RoomConnection} connection
 * @returns {Promise<CheckResult>}
 */
export async function checkConnectivity(connection) {
    const [direct, turn] = await Promise.all([
        checkDirect(connection),
        checkTurn(connection.iceServers),
    ]);
    const lines = [directText(direct), turnText(turn), advice(direct, turn)];
    return {direct, turn, lines: lines.filter((line) => line !== '')};
}

/**
 * @param {import('./protocol.js').RoomConnection} connection
 * @returns {Promise<DirectResult>}
 */
async function checkDirect(connection) {
    const path = await connection.describeMediaPath();
    if (path.state === 'failed') {
        return 'failed';
    }
    if (path.state !== 'connected' || path.localType === null) {
        return 'not_connected';
    }
    return path.localType === 'relay' || path.remoteType === 'relay' ? 'relayed' : 'ok';
}

/**
 * @param {RTCIceServer[]} iceServers
 * @returns {Promise<TurnResult>}
 */
async function checkTurn(iceServers) {
    const turnServers = iceServers.filter((server) => urlsOf(server)
        .some((url) => url.startsWith('turn:') || url.startsWith('turns:')));
    if (turnServers.length === 0) {
        return 'none';
    }
    /** @type {RTCConfiguration} */
    const config = {iceServers: turnServers, iceTransportPolicy: 'relay'};
    const caller = new RTCPeerConnection(config);
    const callee = new RTCPeerConnection(config);
    let relayCandidates = 0;
    /** @type {number[]} */
    const errorCodes = [];
    const forward = (/** @type {RTCPeerConnection} */ target) =>
        (/** @type {RTCPeerConnectionIceEvent} */ event) => {
            if (event.candidate) {
                relayCandidates += 1;
                target.addIceCandidate(event.candidate).catch(() => {});
            }
        };
    caller.onicecandidate = forward(callee);
    callee.onicecandidate = forward(caller);
    for (const pc of [caller, callee]) {
        pc.addEventListener('icecandidateerror', (event) => {
            const error = /** @type {RTCPeerConnectionIceErrorEvent} */ (event);
            errorCodes.push(error.errorCode);
        });
    }
    const channel = caller.createDataChannel('connectivity-check');
    const opened = new Promise((resolve) => {
        channel.onopen = () => resolve(true);
    });
    const timedOut = new Promise((resolve) => {
        setTimeout(() => resolve(false), RELAY_TIMEOUT_MS);
    });
    try {
        const offer = await caller.createOffer();
        await caller.setLocalDescription(offer);
        await callee.setRemoteDescription(offer);
        const answer = await callee.createAnswer();
        await callee.setLocalDescription(answer);
        await caller.setRemoteDescription(answer);
        if (await Promise.race([opened, timedOut])) {
            return 'ok';
        }
    } catch (error) {
        console.warn('The TURN check failed:', error);
    } finally {
        caller.close();
        callee.close();
    }
    if (errorCodes.includes(401)) {
        return 'rejected';
    }
    return relayCandidates > 0 ? 'no_path' : 'unreachable';
}

/**
 * @param {RTCIceServer} server
 * @returns {string[]}
 */
function urlsOf(server) {
    return Array.isArray(server.urls) ? server.urls : [server.urls];
}

/** @param {DirectResult} result */
function directText(result) {
    switch (result) {
    case 'ok':
        return 'Direct media: works. Your browser exchanges audio and video'
            + ' with the server directly.';
    case 'relayed':
        return 'Direct media: blocked. Your media reaches the server only'
            + ' through the TURN relay.';
    case 'failed':
        return 'Direct media: blocked. Your browser could not reach the'
            + ' server\'s media ports (UDP).';
    default:
        return 'Direct media: not tested, because the room\'s media connection'
            + ' is not up yet. Try again in a few seconds.';
    }
}

/** @param {TurnResult} result */
function turnText(result) {
    switch (result) {
    case 'ok':
        return 'TURN relay: works. If direct media is blocked, calls go'
            + ' through the relay.';
    case 'rejected':
        return 'TURN relay: the relay rejected the credentials. The server and'
            + ' the relay do not share the same secret. Tell the organiser.';
    case 'unreachable':
        return 'TURN relay: blocked. Your browser cannot reach the TURN'
            + ' server, so a firewall probably blocks its port.';
    case 'no_path':
        return 'TURN relay: reachable, but no media passed through it. The'
            + ' relay may refuse to forward this traffic.';
    default:
        return 'TURN relay: this server offers none.';
    }
}

/**
 * @param {DirectResult} direct
 * @param {TurnResult} turn
 */
function advice(direct, turn) {
    const directBlocked = direct === 'failed' || direct === 'relayed';
    if (direct === 'failed' && turn !== 'ok') {
        return 'Nothing gets through, so others will not see or hear you. Try'
            + ' another network, or ask its administrator to allow UDP to the'
            + ' server.';
    }
    if (directBlocked && turn === 'ok') {
        return 'You can take part through the relay.';
    }
    return '';
}

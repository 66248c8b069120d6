/**
 * The room page: loads the room with the invite token, shows the pre-join
 * screen, then the tile grid and controls while in the room.
 *
 * The token comes from the URL fragment (`/r/ROOM_ID#TOKEN`). It is kept in
 * sessionStorage so a reload works, and removed from the address bar.
 */

import {FATAL_ERROR_CODES, RoomConnection} from './protocol.js';
import {
    canSelectSpeaker,
    describeMediaProblems,
    deviceIdOf,
    listDevices,
    openCamera,
    openMedia,
    openMicrophone,
    trackEndedError,
    watchDevices,
} from './media.js';
import {TileGrid} from './tiles.js';
import {Coworking} from './coworking.js';
import {checkConnectivity} from './connectivity.js';
import {e2e, installTestHooks, watchFirstFrame} from './e2e.js';
import {ChatPanel} from './chat.js';
import {HostControls} from './moderation.js';
import {OwnPresence, clientKey} from './profile.js';
import {BackgroundMenu} from './backgrounds.js';
import {
    currentBookingRef,
    initBooking,
    isSlotWindowCode,
    waitForSlotWindow,
} from './booking.js';

/**
 * @typedef {import('./protocol.js').DeviceState} DeviceState
 * @typedef {import('./protocol.js').MediaState} MediaState
 * @typedef {import('./protocol.js').Participant} Participant
 * @typedef {import('./e2e.js').Phase} Phase
 * @typedef {{id: string, name: string, limit: number,
 *     participants: number}} RoomInfo
 * @typedef {import('./media.js').DeviceOption} DeviceOption
 */

const NAME_MAX_LENGTH = 64;
const NAME_STORAGE_KEY = 'coworking.name';
const TOKEN_STORAGE_PREFIX = 'coworking.token.';
const COPY_FEEDBACK_MS = 2000;
const INVALID_INVITE_MESSAGE = 'This invite link is not valid or has expired.';

/** Error codes after which the page shows only the message. */
const PAGE_ENDING_CODES = new Set([
    'invalid_invite', 'unsupported_version', 'removed', 'slot_ended',
    'slot_cancelled',
]);
const MUTED_BY_HOST_MESSAGE = 'The host muted you. Unmute when you want to speak.';

/**
 * @param {string} id
 * @returns {any} the element, which room.html must contain
 */
function byId(id) {
    const element = document.getElementById(id);
    if (!element) {
        throw new Error(`room.html has no element #${id}.`);
    }
    return element;
}

const ui = {
    /** @type {HTMLElement} */ header: byId('header'),
    /** @type {HTMLElement} */ roomName: byId('room-name'),
    /** @type {HTMLElement} */ roomCount: byId('room-count'),
    /** @type {HTMLElement} */ status: byId('status'),
    /** @type {HTMLElement} */ message: byId('message'),
    /** @type {HTMLElement} */ messageHint: byId('message-hint'),
    /** @type {HTMLElement} */ inviteRow: byId('invite-row'),
    /** @type {HTMLElement} */ inviteMissing: byId('invite-missing'),
    /** @type {HTMLElement} */ inviteCommand: byId('invite-command'),
    /** @type {HTMLElement} */ loading: byId('loading'),
    /** @type {HTMLElement} */ invite: byId('invite'),
    /** @type {HTMLElement} */ inviteUrl: byId('invite-url'),
    /** @type {HTMLButtonElement} */ copyInvite: byId('copy-invite'),
    /** @type {HTMLElement} */ prejoin: byId('prejoin'),
    /** @type {HTMLElement} */ previewFrame: byId('preview-frame'),
    /** @type {HTMLElement} */ previewOff: byId('preview-off'),
    /** @type {HTMLVideoElement} */ preview: byId('preview'),
    /** @type {HTMLFormElement} */ joinForm: byId('join-form'),
    /** @type {HTMLInputElement} */ name: byId('name'),
    /** @type {HTMLElement} */ prejoinControls: byId('prejoin-controls'),
    /** @type {HTMLButtonElement} */ join: byId('join'),
    /** @type {HTMLElement} */ room: byId('room'),
    /** @type {HTMLElement} */ tiles: byId('tiles'),
    /** @type {HTMLElement} */ sessionBar: byId('session-bar'),
    /** @type {HTMLElement} */ roomControls: byId('room-controls'),
    /** @type {HTMLButtonElement} */ soundNotice: byId('sound-notice'),
    /** @type {HTMLButtonElement} */ leave: byId('leave'),
    /** @type {HTMLButtonElement} */ checkConnection: byId('check-connection'),
    /** @type {HTMLElement} */ connectivity: byId('connectivity'),
    /** @type {HTMLElement} */ connectivityRunning: byId('connectivity-running'),
    /** @type {HTMLElement} */ connectivityResults: byId('connectivity-results'),
    /** @type {HTMLElement} */ left: byId('left'),
    /** @type {HTMLButtonElement} */ rejoin: byId('rejoin'),
    /** @type {HTMLElement} */ mediaControls: byId('media-controls'),
    /** @type {HTMLButtonElement} */ toggleMic: byId('toggle-mic'),
    /** @type {HTMLButtonElement} */ toggleCamera: byId('toggle-camera'),
    /** @type {HTMLSelectElement} */ cameraSelect: byId('camera-select'),
    /** @type {HTMLSelectElement} */ micSelect: byId('mic-select'),
    /** @type {HTMLSelectElement} */ speakerSelect: byId('speaker-select'),
    /** @type {HTMLElement} */ speakerField: byId('speaker-field'),
    /** @type {HTMLElement} */ deviceNotice: byId('device-notice'),
};

const app = {
    roomId: '',
    token: '',
    /** @type {RoomInfo|null} */
    room: null,
    role: 'guest',
    /** @type {string|null} */
    inviteUrl: null,
    name: '',
    /** @type {MediaStreamTrack|null} */
    audioTrack: null,
    /** @type {MediaStreamTrack|null} */
    videoTrack: null,
    /** @type {DeviceState} */
    mic: 'none',
    /** @type {DeviceState} */
    camera: 'none',
    /** @type {Error|null} */
    audioError: null,
    /** @type {Error|null} */
    videoError: null,
    /** Chosen device ids. Empty means the browser's default. */
    cameraId: '',
    micId: '',
    speakerId: '',
    /** Incremented when local media is stopped, to drop late device opens. */
    mediaEpoch: 0,
    /** Whether a rejoin turns the camera on and the microphone muted. */
    rejoinWithCamera: true,
    rejoinMuted: false,
    /** @type {RoomConnection|null} */
    connection: null,
    /** @type {MediaState|null} */
    publishedState: null,
    /** @type {string|null} */
    localTileId: null,
    /** Latest notice from the server, shown until the page reconnects. */
    /** @type {string|null} */
    serverNotice: null,
    /** Remote streams by participant id, kept until the tile exists. */
    /** @type {Map<string, MediaStream>} */
    streams: new Map(),
    /** @type {{track: MediaStreamTrack|null, stream: MediaStream|null}} */
    localVideo: {track: null, stream: null},
    /** Virtual background menu and effect, made once the room is known. */
    /** @type {BackgroundMenu|null} */
    backgrounds: null,
};

const grid = new TileGrid(ui.tiles);
const chat = new ChatPanel({
    log: byId('chat-log'),
    form: byId('chat-form'),
    input: byId('chat-input'),
});
const hostControls = new HostControls({
    lockButton: byId('toggle-lock'),
    lockNotice: byId('lock-notice'),
});
const presence = new OwnPresence();

const coworking = new Coworking(ui.sessionBar, {
    grid,
    muteForFocus: () => enqueueMediaTask(releaseMicrophone),
    videoTrack: () => app.videoTrack,
});

/** Device operations run one after another, in click order. */
let mediaQueue = Promise.resolve();

/**
 * Runs a device operation after the ones already queued.
 * @param {() => Promise<void>} task
 * @returns {Promise<void>}
 */
function enqueueMediaTask(task) {
    mediaQueue = mediaQueue.then(task).catch((error) => {
        console.error('A camera or microphone operation failed:', error);
    });
    return mediaQueue;
}

// ---------------------------------------------------------------------------
// Start-up

/** Loads the room and shows the pre-join screen. */
async function main() {
    installTestHooks({
        collectStats: () => app.connection
            ? app.connection.collectStats()
            : Promise.resolve({participants: {}, pair: null}),
        videoOf: (participantId) => grid.videoOf(participantId),
        injectData: (message) => onData(message),
        sendEncoding: () => app.connection?.sender('video')
            ?.getParameters().encodings?.[0] ?? null,
        backgroundStats: () => app.backgrounds?.effect.stats() ?? null,
        tuneBackground: (tuning) => {
            if (app.backgrounds) {
                app.backgrounds.effect.tuning = tuning;
            }
        },
        useCanvas2d: () => app.backgrounds?.effect.useCanvas2d(),
    });
    bindEvents();

    app.roomId = readRoomId();
    app.token = readToken(app.roomId);
    if (!await loadRoom()) {
        return;
    }
    showPrejoin();
    app.backgrounds = new BackgroundMenu({
        roomId: app.roomId,
        token: app.token,
        onchange: () => enqueueMediaTask(sendVideoOutput),
    });
    initBooking({roomId: app.roomId, token: app.token, role: app.role,
        nameInput: ui.name}).catch((error) => {
        console.error('The session list failed to load:', error);
    });
    await enqueueMediaTask(startMedia);
    await app.backgrounds.load();
    watchDevices(() => {
        refreshDevices();
    });
    if (e2e.phase === 'loading') {
        setPhase('prejoin');
    }
}

/** @returns {string} the last path segment of `/r/ROOM_ID` */
function readRoomId() {
    const segment = location.pathname.split('/').filter((part) => part).pop() ?? '';
    try {
        return decodeURIComponent(segment);
    } catch {
        return segment;
    }
}

/**
 * Takes the token from the URL fragment, or from sessionStorage after a
 * reload, and removes the fragment from the address bar.
 * @param {string} roomId
 * @returns {string} empty when there is no token
 */
function readToken(roomId) {
    const key = TOKEN_STORAGE_PREFIX + roomId;
    const fromHash = location.hash.replace(/^#/, '');
    if (fromHash) {
        try {
            sessionStorage.setItem(key, fromHash);
        } catch (error) {
            console.warn('Could not store the invite token in sessionStorage:', error);
        }
        history.replaceState(history.state, '', location.pathname + location.search);
        return fromHash;
    }
    try {
        return sessionStorage.getItem(key) ?? '';
    } catch {
        return '';
    }
}

/**
 * Fetches the room. On failure shows only the error message.
 * @returns {Promise<boolean>} whether the room was loaded
 */
async function loadRoom() {
    /** @type {Record<string, string>} */
    const headers = app.token ? {Authorization: `Bearer ${app.token}`} : {};
    let response;
    try {
        response = await fetch(`/api/rooms/${encodeURIComponent(app.roomId)}`, {
            headers,
            cache: 'no-store',
        });
    } catch (error) {
        console.error('Could not load the room:', error);
        showFatalError('network',
            'The server could not be reached. Check your connection, then reload the page.');
        return false;
    }
    const body = await response.json().catch(() => null);
    if (response.ok && body?.room) {
        app.room = {
            id: String(body.room.id ?? app.roomId),
            name: String(body.room.name ?? ''),
            limit: Number(body.room.limit ?? 0),
            participants: Number(body.room.participants ?? 0),
        };
        app.role = body.role === 'host' ? 'host' : 'guest';
        app.inviteUrl = typeof body.invite_url === 'string' ? body.invite_url : null;
        return true;
    }
    const error = body?.error;
    if (response.status === 403 && isSlotWindowCode(error?.code)) {
        // An invite bound to a slot: wait for its window, then load again.
        ui.loading.hidden = true;
        setPhase('waiting');
        if (await waitForSlotWindow(body)) {
            ui.loading.hidden = false;
            setPhase('loading');
            return loadRoom();
        }
    }
    if (response.status === 403) {
        showFatalError(error?.code ?? 'invalid_invite',
            error?.message ?? INVALID_INVITE_MESSAGE);
        if (!app.token) {
            // The usual cause: a link copied from the address bar, which no
            // longer shows the code after "#".
            ui.messageHint.textContent = 'This link has no invite code. Open the'
                + ' full invite link you were given: it ends with # and a code.';
            ui.messageHint.hidden = false;
        }
    } else {
        showFatalError(error?.code ?? `http_${response.status}`,
            error?.message ?? `The room could not be loaded (HTTP ${response.status}).`
                + ' Reload the page to try again.');
    }
    return false;
}

function bindEvents() {
    chat.onsend = (text) => app.connection?.sendData({type: 'chat', text});
    hostControls.send = (message) => app.connection?.sendData(message);
    presence.onchange = () => renderLocalMedia();
    ui.joinForm.addEventListener('submit', onJoinSubmit);
    ui.leave.addEventListener('click', leaveRoom);
    ui.checkConnection.addEventListener('click', runConnectivityCheck);
    ui.rejoin.addEventListener('click', rejoinRoom);
    ui.copyInvite.addEventListener('click', copyInviteUrl);
    ui.toggleMic.addEventListener('click', () => enqueueMediaTask(toggleMicrophone));
    ui.toggleCamera.addEventListener('click', () => enqueueMediaTask(toggleCamera));
    ui.cameraSelect.addEventListener('change', () => {
        app.cameraId = ui.cameraSelect.value;
        enqueueMediaTask(onCameraChosen);
    });
    ui.micSelect.addEventListener('change', () => {
        app.micId = ui.micSelect.value;
        enqueueMediaTask(onMicrophoneChosen);
    });
    ui.speakerSelect.addEventListener('change', () => {
        app.speakerId = ui.speakerSelect.value;
        grid.setSinkId(app.speakerId);
    });
    ui.name.addEventListener('input', () => ui.name.removeAttribute('aria-invalid'));
    ui.soundNotice.addEventListener('click', () => {
        grid.resumeAudio();
        ui.soundNotice.hidden = true;
    });

    grid.onremotestream = (participantId, video) => {
        watchFirstFrame(participantId, video);
    };
    grid.onautoplayblocked = () => {
        ui.soundNotice.hidden = false;
    };

    window.addEventListener('pagehide', () => {
        app.connection?.leave();
    });
    document.addEventListener('visibilitychange', () => {
        // Tiles in a hidden tab are not visible, so only audio is received.
        app.connection?.setVideoShown(document.visibilityState === 'visible');
    });
    window.addEventListener('hashchange', () => {
        // A new invite pasted onto the open page changes only the fragment,
        // which does not reload the page. The reload reads the new token.
        if (location.hash.length > 1) {
            app.connection?.leave();
            location.reload();
        }
    });
    window.addEventListener('pageshow', (event) => {
        // A page restored from the back-forward cache has a dead connection.
        if (event.persisted) {
            location.reload();
        }
    });
}

// ---------------------------------------------------------------------------
// Screens

/** @param {Phase} phase */
function setPhase(phase) {
    e2e.phase = phase;
    document.body.dataset.phase = phase;
}

/**
 * @param {string} text
 * @param {'error'|'info'} kind
 */
function showMessage(text, kind) {
    ui.message.textContent = text;
    ui.message.dataset.kind = kind;
    ui.message.hidden = false;
}

function hideMessage() {
    ui.message.hidden = true;
    ui.message.textContent = '';
}

/** @param {string|null} text null hides the status line */
function showStatus(text) {
    ui.status.textContent = text ?? '';
    ui.status.hidden = text === null;
}

/**
 * Shows only an error message, as for an invalid invite, and releases the
 * camera and microphone.
 * @param {string} code
 * @param {string} message
 */
function showFatalError(code, message) {
    stopLocalMedia();
    for (const element of [ui.header, ui.loading, ui.invite, ui.prejoin, ui.room,
        ui.left, ui.mediaControls]) {
        element.hidden = true;
    }
    e2e.error = code;
    e2e.errorMessage = message;
    showMessage(message, 'error');
    setPhase('error');
}

function renderRoomHeader() {
    if (!app.room) {
        return;
    }
    ui.header.hidden = false;
    ui.roomName.textContent = app.room.name;
    document.title = app.room.name ? `${app.room.name} – Coworking` : 'Coworking room';
    const inRoom = !ui.room.hidden;
    const count = inRoom ? grid.size : app.room.participants;
    ui.roomCount.textContent = app.room.limit > 0
        ? `${count} of ${app.room.limit} people here`
        : `${count} people here`;
}

function renderInvite() {
    ui.invite.hidden = app.role !== 'host';
    ui.inviteRow.hidden = app.inviteUrl === null;
    ui.inviteMissing.hidden = app.inviteUrl !== null;
    if (app.inviteUrl !== null) {
        ui.inviteUrl.textContent = app.inviteUrl;
    } else {
        ui.inviteCommand.textContent = `coworking invite create ${app.roomId}`;
    }
}

function showPrejoin() {
    ui.loading.hidden = true;
    ui.room.hidden = true;
    ui.left.hidden = true;
    ui.prejoin.hidden = false;
    ui.prejoinControls.append(ui.mediaControls);
    ui.mediaControls.hidden = false;
    ui.join.disabled = false;
    ui.join.textContent = 'Join';
    if (!ui.name.value) {
        ui.name.value = initialName();
    }
    renderRoomHeader();
    renderInvite();
}

function showRoom() {
    ui.loading.hidden = true;
    ui.prejoin.hidden = true;
    ui.left.hidden = true;
    ui.room.hidden = false;
    ui.roomControls.insertBefore(ui.mediaControls, ui.leave);
    ui.mediaControls.hidden = false;
    ui.join.disabled = false;
    ui.join.textContent = 'Join';
    renderRoomHeader();
    renderInvite();
}

/** @returns {string} the name from `?name=`, else the one saved last time */
function initialName() {
    let name = new URLSearchParams(location.search).get('name') ?? '';
    if (!name.trim()) {
        try {
            name = localStorage.getItem(NAME_STORAGE_KEY) ?? '';
        } catch {
            name = '';
        }
    }
    // A value set from script bypasses the input's maxlength.
    return Array.from(name.trim()).slice(0, NAME_MAX_LENGTH).join('');
}

// ---------------------------------------------------------------------------
// Local camera and microphone

/**
 * Opens the camera and microphone for the pre-join screen. When the person
 * has already joined, the tracks go to the senders at once.
 */
async function startMedia() {
    const epoch = app.mediaEpoch;
    const result = await openMedia({
        audio: true,
        video: true,
        audioDeviceId: app.micId,
        videoDeviceId: app.cameraId,
    });
    if (epoch !== app.mediaEpoch) {
        result.audioTrack?.stop();
        result.videoTrack?.stop();
        return;
    }
    adoptAudioTrack(result.audioTrack);
    adoptVideoTrack(result.videoTrack);
    app.audioError = result.audioError;
    app.videoError = result.videoError;
    app.mic = result.audioTrack ? 'on' : 'none';
    app.camera = result.videoTrack ? 'on' : 'none';
    await app.connection?.replaceTrack('audio', app.audioTrack);
    await app.connection?.replaceTrack('video', outgoingVideo());
    renderLocalMedia();
    await refreshDevices();
}

/** @param {MediaStreamTrack|null} track */
function adoptAudioTrack(track) {
    app.audioTrack = track;
    if (track) {
        app.micId = deviceIdOf(track) || app.micId;
        track.addEventListener('ended', () => {
            enqueueMediaTask(() => onTrackEnded(track));
        });
    }
}

/** @param {MediaStreamTrack|null} track */
function adoptVideoTrack(track) {
    app.videoTrack = track;
    if (track) {
        app.cameraId = deviceIdOf(track) || app.cameraId;
        track.addEventListener('ended', () => {
            enqueueMediaTask(() => onTrackEnded(track));
        });
    }
}

/**
 * Handles a device that stopped on its own, e.g. an unplugged camera.
 * Tracks stopped by this page do not fire `ended`.
 * @param {MediaStreamTrack} track
 */
async function onTrackEnded(track) {
    if (track === app.audioTrack) {
        app.audioTrack = null;
        app.mic = 'none';
        app.audioError = trackEndedError();
        await app.connection?.replaceTrack('audio', null);
    } else if (track === app.videoTrack) {
        app.videoTrack = null;
        app.camera = 'none';
        app.videoError = trackEndedError();
        await app.connection?.replaceTrack('video', null);
    } else {
        return;
    }
    renderLocalMedia();
    await refreshDevices();
}

/** Stops both tracks, as on leaving, so the camera light goes off. */
function stopLocalMedia() {
    app.mediaEpoch += 1;
    app.audioTrack?.stop();
    app.videoTrack?.stop();
    app.audioTrack = null;
    app.videoTrack = null;
    renderLocalMedia();
}

/**
 * Opens the chosen camera in place of the current one and sends it.
 * On failure the camera state becomes 'none' and the device notice explains
 * why.
 */
async function startCamera() {
    const epoch = app.mediaEpoch;
    const previous = app.videoTrack;
    // Stop the old camera first because some phones fail to open a second
    // camera (NotReadableError) while one is open.
    app.videoTrack = null;
    previous?.stop();
    try {
        const track = await openCamera(app.cameraId);
        if (epoch !== app.mediaEpoch) {
            track.stop();
            return;
        }
        adoptVideoTrack(track);
        app.camera = 'on';
        app.videoError = null;
    } catch (error) {
        if (epoch !== app.mediaEpoch) {
            return;
        }
        console.warn('Could not open the camera:', error);
        app.camera = 'none';
        app.videoError = /** @type {Error} */ (error);
    }
    await app.connection?.replaceTrack('video', outgoingVideo());
    await coworking.refreshSendProfile();
    renderLocalMedia();
    await refreshDevices();
}

/** Stops sending video and releases the camera. */
async function stopCamera() {
    const track = app.videoTrack;
    app.videoTrack = null;
    app.camera = 'off';
    await app.connection?.replaceTrack('video', null);
    track?.stop();
    renderLocalMedia();
}

/**
 * Opens the chosen microphone in place of the current one and sends it.
 * @param {boolean} muted whether the new track starts muted
 */
async function startMicrophone(muted) {
    const epoch = app.mediaEpoch;
    const previous = app.audioTrack;
    app.audioTrack = null;
    previous?.stop();
    try {
        const track = await openMicrophone(app.micId);
        if (epoch !== app.mediaEpoch) {
            track.stop();
            return;
        }
        track.enabled = !muted;
        adoptAudioTrack(track);
        app.mic = muted ? 'off' : 'on';
        app.audioError = null;
    } catch (error) {
        if (epoch !== app.mediaEpoch) {
            return;
        }
        console.warn('Could not open the microphone:', error);
        app.mic = 'none';
        app.audioError = /** @type {Error} */ (error);
    }
    await app.connection?.replaceTrack('audio', app.audioTrack);
    renderLocalMedia();
    await refreshDevices();
}

/** Mutes or unmutes the microphone. Without one, tries to open one. */
async function toggleMicrophone() {
    if (app.mic === 'none' || !app.audioTrack) {
        await startMicrophone(false);
        return;
    }
    const muted = app.mic === 'on';
    if (muted && coworking.inFocus()) {
        await releaseMicrophone();
        return;
    }
    app.audioTrack.enabled = !muted;
    app.mic = muted ? 'off' : 'on';
    renderLocalMedia();
}

/**
 * Mutes the microphone and stops its track, so that a Bluetooth headset can
 * leave its low-quality call mode. The sender stays; unmuting opens the
 * microphone again.
 */
async function releaseMicrophone() {
    if (app.mic === 'none') {
        return;
    }
    const track = app.audioTrack;
    app.audioTrack = null;
    app.mic = 'off';
    await app.connection?.replaceTrack('audio', null);
    track?.stop();
    renderLocalMedia();
}

async function toggleCamera() {
    if (app.camera === 'on') {
        await stopCamera();
    } else {
        await startCamera();
    }
}

async function onCameraChosen() {
    // A camera turned off stays off. The choice applies when it is turned on.
    if (app.camera !== 'off' && deviceIdOf(app.videoTrack) !== app.cameraId) {
        await startCamera();
    }
}

async function onMicrophoneChosen() {
    // A released microphone stays closed; the choice applies on unmute.
    if (app.mic === 'off' && !app.audioTrack) {
        return;
    }
    if (deviceIdOf(app.audioTrack) !== app.micId) {
        await startMicrophone(app.mic === 'off');
    }
}

/**
 * @returns {MediaStreamTrack|null} the video track to send: the camera, or
 *     the canvas track of the virtual background effect
 */
function outgoingVideo() {
    return app.backgrounds ? app.backgrounds.effect.output(app.videoTrack)
        : app.videoTrack;
}

/** Sends the current video output, after the background effect changed. */
async function sendVideoOutput() {
    await app.connection?.replaceTrack('video', outgoingVideo());
    renderLocalMedia();
}

/**
 * @returns {MediaStream|null} a stream with the video track to send, reused
 *     per track, for the preview and the own tile
 */
function localVideoStream() {
    const track = outgoingVideo();
    if (!track) {
        return null;
    }
    if (app.localVideo.track !== track) {
        app.localVideo = {track, stream: new MediaStream([track])};
    }
    return app.localVideo.stream;
}

/**
 * Updates the preview, the own tile, the toggle buttons and the device
 * notice, and sends the state when it changed.
 */
function renderLocalMedia() {
    if (app.mic === 'on' && ui.message.textContent === MUTED_BY_HOST_MESSAGE) {
        hideMessage();
    }
    const stream = localVideoStream();
    if (ui.preview.srcObject !== stream) {
        ui.preview.srcObject = stream;
        if (stream) {
            ui.preview.play().catch(() => {});
        }
    }
    ui.previewFrame.dataset.camera = app.camera;
    ui.previewOff.textContent = app.camera === 'none' ? 'No camera' : 'Camera off';

    const micLabels = {on: 'Mute', off: 'Unmute', none: 'Turn on microphone'};
    ui.toggleMic.textContent = micLabels[app.mic];
    ui.toggleMic.dataset.state = app.mic;
    const cameraLabels = {on: 'Stop camera', off: 'Start camera', none: 'Turn on camera'};
    ui.toggleCamera.textContent = cameraLabels[app.camera];
    ui.toggleCamera.dataset.state = app.camera;

    const notice = describeMediaProblems(app.audioError, app.videoError);
    ui.deviceNotice.textContent = notice;
    ui.deviceNotice.hidden = notice === '';

    if (app.localTileId) {
        grid.setState(app.localTileId, localState());
        grid.setStream(app.localTileId, stream);
    }
    publishState();
}

/** @returns {MediaState} the media state with the presence fields */
function localState() {
    return {
        mic: app.mic,
        camera: app.camera,
        ...presence.fields(),
        background: app.backgrounds?.applied ?? 'none',
    };
}

/** Sends the own state to the room when it differs from the last one sent. */
function publishState() {
    if (!app.connection) {
        return;
    }
    const state = localState();
    if (JSON.stringify(state) === JSON.stringify(app.publishedState)) {
        return;
    }
    app.publishedState = state;
    app.connection.setState(state);
}

/** Refills the device selects, keeping the devices in use selected. */
async function refreshDevices() {
    const lists = await listDevices();
    fillSelect(ui.cameraSelect, lists.cameras,
        deviceIdOf(app.videoTrack) || app.cameraId, 'No camera found');
    fillSelect(ui.micSelect, lists.microphones,
        deviceIdOf(app.audioTrack) || app.micId, 'No microphone found');
    ui.speakerField.hidden = !canSelectSpeaker();
    if (canSelectSpeaker()) {
        fillSelect(ui.speakerSelect, lists.speakers, app.speakerId, 'Default output');
    }
}

/**
 * @param {HTMLSelectElement} select
 * @param {DeviceOption[]} devices
 * @param {string} selectedId
 * @param {string} emptyLabel shown, disabled, when the list is empty
 */
function fillSelect(select, devices, selectedId, emptyLabel) {
    const options = devices.map((device) => {
        const option = document.createElement('option');
        option.value = device.deviceId;
        option.textContent = device.label;
        return option;
    });
    if (options.length === 0) {
        const option = document.createElement('option');
        option.value = '';
        option.textContent = emptyLabel;
        options.push(option);
    }
    select.replaceChildren(...options);
    select.disabled = devices.length === 0;
    if (devices.some((device) => device.deviceId === selectedId)) {
        select.value = selectedId;
    }
}

// ---------------------------------------------------------------------------
// Joining and leaving

/**
 * @param {SubmitEvent} event
 */
function onJoinSubmit(event) {
    event.preventDefault();
    if (app.connection) {
        return;
    }
    const name = ui.name.value.trim();
    if (!name) {
        ui.name.setAttribute('aria-invalid', 'true');
        showMessage('Enter your name to join.', 'error');
        ui.name.focus();
        return;
    }
    if (Array.from(name).length > NAME_MAX_LENGTH) {
        ui.name.setAttribute('aria-invalid', 'true');
        showMessage(`Your name can have at most ${NAME_MAX_LENGTH} characters.`, 'error');
        ui.name.focus();
        return;
    }
    app.name = name;
    try {
        localStorage.setItem(NAME_STORAGE_KEY, name);
    } catch (error) {
        console.warn('Could not save the name in localStorage:', error);
    }
    joinRoom(performance.now());
}

/**
 * Opens the connection to the room.
 * @param {number} clickedAt performance.now() of the Join or Rejoin click
 */
function joinRoom(clickedAt) {
    hideMessage();
    e2e.joinClickedAt = clickedAt;
    e2e.firstRemoteFrame = {};
    e2e.error = null;
    e2e.errorMessage = null;
    e2e.participantId = null;
    setPhase('joining');
    ui.join.disabled = true;
    ui.join.textContent = 'Joining…';

    const connection = new RoomConnection({
        room: app.roomId,
        token: app.token,
        name: app.name,
        booking: currentBookingRef(app.roomId),
        getLocalTracks: () => ({audio: app.audioTrack, video: outgoingVideo()}),
        clientKey: clientKey(),
    });
    const current = () => connection === app.connection;
    connection.onwelcome = (welcome) => current() && onWelcome(welcome);
    connection.onparticipant = (participant) => current() && onParticipant(participant);
    connection.onleft = (id) => current() && onParticipantLeft(id);
    connection.onstate = (id, state) => current() && grid.setState(id, state);
    connection.onstream = (id, stream) => current() && onRemoteStream(id, stream);
    connection.onerror = (code, message) => current() && onConnectionError(code, message);
    connection.onstatus = (status) => current() && onConnectionStatus(status);
    connection.ondata = (message) => current() && onData(message);
    connection.onnotice = (text) => current() && onServerNotice(text);

    app.connection = connection;
    coworking.attach(connection, app.role);
    app.publishedState = null;
    publishState();
    connection.setVideoShown(document.visibilityState === 'visible');
    connection.start();
}

/** @param {any} welcome */
function onWelcome(welcome) {
    const id = String(welcome.participant.id);
    if (app.room && welcome.room) {
        app.room.name = String(welcome.room.name ?? app.room.name);
        app.room.limit = Number(welcome.room.limit ?? app.room.limit);
    }
    if (app.localTileId) {
        grid.rename(app.localTileId, id);
    }
    app.localTileId = id;
    grid.upsert({
        id,
        name: String(welcome.participant.name ?? app.name),
        local: true,
        state: localState(),
    });
    chat.ownId = id;
    hostControls.setHost(welcome.participant.role === 'host');
    hostControls.setLocked(false);
    grid.setStream(id, localVideoStream());
    e2e.participantId = id;
    hideMessage();
    showRoom();
    setPhase('joined');
}

/** @param {Participant} participant */
function onParticipant(participant) {
    grid.upsert({id: participant.id, name: participant.name, state: participant.state});
    hostControls.decorateTile(grid.tiles.get(participant.id), participant.id,
        participant.role);
    grid.setStream(participant.id, app.streams.get(participant.id) ?? null);
    coworking.refreshTiles();
    renderRoomHeader();
}

/** @param {string} id */
function onParticipantLeft(id) {
    app.streams.delete(id);
    grid.remove(id);
    renderRoomHeader();
}

/**
 * @param {string} id
 * @param {MediaStream|null} stream
 */
function onRemoteStream(id, stream) {
    if (stream) {
        app.streams.set(id, stream);
    } else {
        app.streams.delete(id);
    }
    grid.setStream(id, stream);
}

/**
 * Handles the data-channel messages of chat, moderation and the clock.
 * @param {any} message
 */
function onData(message) {
    switch (message?.type) {
    case 'chat':
        chat.add(message);
        break;
    case 'chat_history':
        chat.replace(message.messages);
        break;
    case 'chat_cleared':
        chat.clear();
        break;
    case 'lock':
        hostControls.setLocked(message.locked === true);
        break;
    case 'muted':
        if (message.id === app.localTileId) {
            enqueueMediaTask(onMutedByHost);
        }
        break;
    case 'clock':
        presence.onClock(message);
        break;
    // Other types, such as coffee, have handlers of their own.
    }
}

/** Turns the microphone off after the host muted this participant. */
async function onMutedByHost() {
    if (app.audioTrack && app.mic === 'on') {
        app.audioTrack.enabled = false;
        app.mic = 'off';
    }
    renderLocalMedia();
    showMessage(MUTED_BY_HOST_MESSAGE, 'info');
}

/**
 * Shows a notice such as the server's restart message until the page is
 * connected again.
 * @param {string} text
 */
function onServerNotice(text) {
    if (text) {
        app.serverNotice = text;
        showStatus(text);
    }
}

/** @param {import('./protocol.js').ConnectionStatus} status */
function onConnectionStatus(status) {
    if (status === 'connecting') {
        showStatus(app.serverNotice ?? 'Connecting…');
    } else if (status === 'connected') {
        app.serverNotice = null;
        showStatus(null);
    } else if (status === 'reconnecting') {
        showStatus(app.serverNotice ?? 'Connection lost. Reconnecting…');
        if (e2e.phase === 'joined') {
            setPhase('joining');
        }
    } else {
        showStatus(null);
    }
}

/**
 * Shows a server error. Fatal errors end the connection: an invalid invite
 * leaves only the message, others return to the pre-join screen.
 * @param {string} code
 * @param {string} message
 */
function onConnectionError(code, message) {
    const text = message || `The server reported an error (${code}).`;
    e2e.error = code;
    e2e.errorMessage = text;
    if (!FATAL_ERROR_CODES.has(code)) {
        showMessage(text, 'error');
        return;
    }
    app.connection = null;
    resetRoomView();
    if (PAGE_ENDING_CODES.has(code)) {
        showFatalError(code, text);
        return;
    }
    showPrejoin();
    showMessage(text, 'error');
    setPhase('error');
}

/**
 * Tests whether this browser reaches the server's media directly and
 * through TURN, and lists the results as text.
 */
async function runConnectivityCheck() {
    const connection = app.connection;
    if (!connection) {
        return;
    }
    ui.checkConnection.disabled = true;
    ui.connectivity.hidden = false;
    ui.connectivityRunning.hidden = false;
    ui.connectivityResults.replaceChildren();
    delete ui.connectivity.dataset.direct;
    delete ui.connectivity.dataset.turn;
    try {
        const result = await checkConnectivity(connection);
        ui.connectivityResults.replaceChildren(...result.lines.map((line) => {
            const item = document.createElement('li');
            item.textContent = line;
            return item;
        }));
        // Read by the browser tests.
        ui.connectivity.dataset.direct = result.direct;
        ui.connectivity.dataset.turn = result.turn;
    } finally {
        ui.connectivityRunning.hidden = true;
        ui.checkConnection.disabled = false;
    }
}

/** Removes all tiles and remote streams, and the status line. */
function resetRoomView() {
    coworking.detach();
    grid.clear();
    chat.clear();
    hostControls.setLocked(false);
    app.localTileId = null;
    app.streams.clear();
    ui.soundNotice.hidden = true;
    ui.connectivity.hidden = true;
    showStatus(null);
}

function leaveRoom() {
    const connection = app.connection;
    if (!connection) {
        return;
    }
    app.connection = null;
    connection.leave();
    app.rejoinWithCamera = app.camera !== 'off';
    app.rejoinMuted = app.mic === 'off';
    stopLocalMedia();
    resetRoomView();
    e2e.participantId = null;
    ui.room.hidden = true;
    ui.mediaControls.hidden = true;
    ui.left.hidden = false;
    showMessage('You left the room.', 'info');
    setPhase('left');
}

/** Opens the devices again with the earlier choices and joins. */
function rejoinRoom() {
    if (app.connection) {
        return;
    }
    const clickedAt = performance.now();
    ui.rejoin.disabled = true;
    hideMessage();
    setPhase('joining');
    enqueueMediaTask(async () => {
        const result = await openMedia({
            audio: true,
            video: app.rejoinWithCamera,
            audioDeviceId: app.micId,
            videoDeviceId: app.cameraId,
        });
        adoptAudioTrack(result.audioTrack);
        adoptVideoTrack(result.videoTrack);
        app.audioError = result.audioError;
        app.videoError = result.videoError;
        if (result.audioTrack && app.rejoinMuted) {
            result.audioTrack.enabled = false;
        }
        if (!result.audioTrack) {
            app.mic = 'none';
        } else {
            app.mic = app.rejoinMuted ? 'off' : 'on';
        }
        if (!app.rejoinWithCamera) {
            app.camera = 'off';
        } else {
            app.camera = result.videoTrack ? 'on' : 'none';
        }
        renderLocalMedia();
        await refreshDevices();
        ui.rejoin.disabled = false;
        ui.left.hidden = true;
        joinRoom(clickedAt);
    });
}

async function copyInviteUrl() {
    if (!app.inviteUrl) {
        return;
    }
    let copied = false;
    try {
        await navigator.clipboard.writeText(app.inviteUrl);
        copied = true;
    } catch (error) {
        console.info('Clipboard API unavailable; copying by selection:', error);
        copied = copyBySelection(ui.inviteUrl);
    }
    ui.copyInvite.textContent = copied ? 'Copied' : 'Copy failed: the link is selected';
    setTimeout(() => {
        ui.copyInvite.textContent = 'Copy';
    }, COPY_FEEDBACK_MS);
}

/**
 * Selects the element's text and copies it with the older editing command.
 * @param {HTMLElement} element
 * @returns {boolean} whether the copy command succeeded
 */
function copyBySelection(element) {
    const selection = window.getSelection();
    if (!selection) {
        return false;
    }
    const range = document.createRange();
    range.selectNodeContents(element);
    selection.removeAllRanges();
    selection.addRange(range);
    try {
        return document.execCommand('copy');
    } catch {
        return false;
    }
}

main().catch((error) => {
    console.error('The room page failed to start:', error);
    showFatalError('client_error',
        'The page failed to start. Reload the page to try again.');
});

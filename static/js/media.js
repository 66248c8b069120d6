/**
 * Camera and microphone access, device lists, and plain-language
 * descriptions of device errors.
 */

const AUDIO_CONSTRAINTS = {
    echoCancellation: true,
    noiseSuppression: true,
    autoGainControl: true,
};
const VIDEO_CONSTRAINTS = {width: 640, height: 480, frameRate: 30};

/** Error name for a track that ended while in use, e.g. an unplugged camera. */
export const TRACK_ENDED_ERROR = 'TrackEndedError';
const UNSUPPORTED_ERROR = 'MediaUnsupportedError';

/**
 * @typedef {{audioTrack: MediaStreamTrack|null,
 *     videoTrack: MediaStreamTrack|null,
 *     audioError: Error|null, videoError: Error|null}} MediaResult
 * @typedef {{deviceId: string, label: string}} DeviceOption
 * @typedef {{cameras: DeviceOption[], microphones: DeviceOption[],
 *     speakers: DeviceOption[]}} DeviceLists
 */

/** @returns {boolean} whether this page may call getUserMedia */
function hasMediaDevices() {
    return Boolean(navigator.mediaDevices?.getUserMedia);
}

/**
 * Creates an Error with a given name, for failures that have no DOMException.
 * @param {string} name
 * @param {string} message
 * @returns {Error}
 */
function namedError(name, message) {
    const error = new Error(message);
    error.name = name;
    return error;
}

/** @returns {Error} the error for a track that ended while in use */
export function trackEndedError() {
    return namedError(TRACK_ENDED_ERROR, 'The device stopped or was disconnected.');
}

/**
 * @param {'audio'|'video'} kind
 * @param {string} deviceId empty for the default device
 * @returns {MediaTrackConstraints}
 */
function constraintsFor(kind, deviceId) {
    const base = kind === 'audio' ? AUDIO_CONSTRAINTS : VIDEO_CONSTRAINTS;
    return deviceId ? {...base, deviceId: {exact: deviceId}} : {...base};
}

/**
 * Opens one track. A chosen device that no longer exists is replaced by the
 * default device.
 * @param {'audio'|'video'} kind
 * @param {string} deviceId empty for the default device
 * @returns {Promise<MediaStreamTrack>}
 */
async function openTrack(kind, deviceId) {
    if (!hasMediaDevices()) {
        throw namedError(UNSUPPORTED_ERROR, 'navigator.mediaDevices is missing.');
    }
    let stream;
    try {
        stream = await navigator.mediaDevices.getUserMedia(
            {[kind]: constraintsFor(kind, deviceId)});
    } catch (error) {
        if (!deviceId || !(error instanceof Error)
                || error.name !== 'OverconstrainedError') {
            throw error;
        }
        stream = await navigator.mediaDevices.getUserMedia(
            {[kind]: constraintsFor(kind, '')});
    }
    const track = stream.getTracks()[0];
    if (!track) {
        throw namedError('NotFoundError', `getUserMedia returned no ${kind} track.`);
    }
    return track;
}

/**
 * Opens the microphone.
 * @param {string} [deviceId] empty or omitted for the default device
 * @returns {Promise<MediaStreamTrack>}
 */
export function openMicrophone(deviceId = '') {
    return openTrack('audio', deviceId);
}

/**
 * Opens the camera.
 * @param {string} [deviceId] empty or omitted for the default device
 * @returns {Promise<MediaStreamTrack>}
 */
export function openCamera(deviceId = '') {
    return openTrack('video', deviceId);
}

/**
 * Opens the requested devices, first together (one permission prompt), then
 * each alone when that fails, so one missing or denied device does not cost
 * the other. Never rejects: failures are returned per device.
 * @param {{audio?: boolean, video?: boolean,
 *     audioDeviceId?: string, videoDeviceId?: string}} [options]
 * @returns {Promise<MediaResult>}
 */
export async function openMedia(options = {}) {
    const {audio = true, video = true, audioDeviceId = '', videoDeviceId = ''} = options;
    /** @type {MediaResult} */
    const result = {audioTrack: null, videoTrack: null, audioError: null, videoError: null};

    if (audio && video && hasMediaDevices()) {
        try {
            const stream = await navigator.mediaDevices.getUserMedia({
                audio: constraintsFor('audio', audioDeviceId),
                video: constraintsFor('video', videoDeviceId),
            });
            result.audioTrack = stream.getAudioTracks()[0] ?? null;
            result.videoTrack = stream.getVideoTracks()[0] ?? null;
            if (result.audioTrack && result.videoTrack) {
                return result;
            }
            stream.getTracks().forEach((track) => track.stop());
            result.audioTrack = null;
            result.videoTrack = null;
        } catch (error) {
            console.info('Opening camera and microphone together failed;'
                + ' trying each alone:', error);
        }
    }
    if (audio) {
        try {
            result.audioTrack = await openMicrophone(audioDeviceId);
        } catch (error) {
            result.audioError = toError(error);
        }
    }
    if (video) {
        try {
            result.videoTrack = await openCamera(videoDeviceId);
        } catch (error) {
            result.videoError = toError(error);
        }
    }
    return result;
}

/**
 * @param {unknown} value
 * @returns {Error}
 */
function toError(value) {
    return value instanceof Error ? value : namedError('Error', String(value));
}

/**
 * Sorts an error into the cases the notice describes differently.
 * @param {Error} error
 * @returns {'denied'|'missing'|'busy'|'ended'|'unsupported'|'other'}
 */
function classifyError(error) {
    switch (error.name) {
    case 'NotAllowedError':
    case 'SecurityError':
        return 'denied';
    case 'NotFoundError':
    case 'OverconstrainedError':
        return 'missing';
    case 'NotReadableError':
        return 'busy';
    case TRACK_ENDED_ERROR:
        return 'ended';
    case UNSUPPORTED_ERROR:
        return 'unsupported';
    default:
        return 'other';
    }
}

/**
 * @param {'camera'|'microphone'} device
 * @param {Error} error
 * @returns {string}
 */
function describeFailure(device, error) {
    switch (classifyError(error)) {
    case 'denied':
        return `Access to your ${device} was denied.`;
    case 'missing':
        return `No ${device} was found.`;
    case 'busy':
        return `Your ${device} is in use by another program.`
            + ' Close that program, then reload the page.';
    case 'ended':
        return `Your ${device} stopped or was disconnected.`;
    case 'unsupported':
        return `This page cannot use your ${device} because the browser`
            + ' allows it only on HTTPS pages.';
    default:
        return `Your ${device} could not be started (${error.name}: ${error.message}).`;
    }
}

/**
 * Describes missing or failed devices in plain sentences for the device
 * notice, including what still works and how to allow denied access.
 * @param {Error|null} audioError
 * @param {Error|null} videoError
 * @returns {string} empty when both devices work
 */
export function describeMediaProblems(audioError, videoError) {
    if (!audioError && !videoError) {
        return '';
    }
    const audioCase = audioError ? classifyError(audioError) : null;
    const videoCase = videoError ? classifyError(videoError) : null;
    /** @type {string[]} */
    const sentences = [];

    if (audioCase === 'denied' && videoCase === 'denied') {
        sentences.push('Access to your camera and microphone was denied.');
    } else if (audioCase === 'missing' && videoCase === 'missing') {
        sentences.push('No camera or microphone was found.');
    } else {
        if (videoError) {
            sentences.push(describeFailure('camera', videoError));
        }
        if (audioError) {
            sentences.push(describeFailure('microphone', audioError));
        }
    }

    if (audioError && videoError) {
        sentences.push('You can still join and watch the others.');
    } else if (videoError) {
        sentences.push('You can still join with audio only.');
    } else {
        sentences.push('You can still join with video only.');
    }

    const denied = [];
    if (videoCase === 'denied') {
        denied.push('camera');
    }
    if (audioCase === 'denied') {
        denied.push('microphone');
    }
    if (denied.length > 0) {
        const devices = denied.join(' and ');
        sentences.push(
            'To allow access, open the site settings (the icon to the left of'
            + ` the address), allow the ${devices}, then reload the page.`);
    }
    return sentences.join(' ');
}

/** @returns {boolean} whether media elements can choose an audio output */
export function canSelectSpeaker() {
    return typeof HTMLMediaElement !== 'undefined'
        && 'setSinkId' in HTMLMediaElement.prototype;
}

/**
 * Lists cameras, microphones and, where the browser can choose one, audio
 * outputs. Labels are empty until the page has media permission, so those
 * devices get numbered names.
 * @returns {Promise<DeviceLists>}
 */
export async function listDevices() {
    /** @type {DeviceLists} */
    const lists = {cameras: [], microphones: [], speakers: []};
    if (!navigator.mediaDevices?.enumerateDevices) {
        return lists;
    }
    let devices;
    try {
        devices = await navigator.mediaDevices.enumerateDevices();
    } catch (error) {
        console.warn('Could not list media devices:', error);
        return lists;
    }
    const groups = {
        videoinput: {list: lists.cameras, noun: 'Camera'},
        audioinput: {list: lists.microphones, noun: 'Microphone'},
        audiooutput: {list: lists.speakers, noun: 'Speaker'},
    };
    for (const device of devices) {
        const group = groups[device.kind];
        if (!group) {
            continue;
        }
        if (group.list.some((known) => known.deviceId === device.deviceId)) {
            continue;
        }
        const label = device.label || `${group.noun} ${group.list.length + 1}`;
        group.list.push({deviceId: device.deviceId, label});
    }
    if (!canSelectSpeaker()) {
        lists.speakers = [];
    }
    return lists;
}

/**
 * Calls `callback` whenever a device is added or removed.
 * @param {() => void} callback
 * @returns {() => void} a function that stops watching
 */
export function watchDevices(callback) {
    const mediaDevices = navigator.mediaDevices;
    if (!mediaDevices?.addEventListener) {
        return () => {};
    }
    mediaDevices.addEventListener('devicechange', callback);
    return () => mediaDevices.removeEventListener('devicechange', callback);
}

/**
 * @param {MediaStreamTrack|null} track
 * @returns {string} the track's device id, or empty
 */
export function deviceIdOf(track) {
    return track?.getSettings().deviceId ?? '';
}

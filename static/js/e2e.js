/**
 * Hooks for the automated browser tests: `window.e2e`, `window.e2eStats()`
 * and `window.e2eColor()`, which only read page state, and
 * `window.e2eInject(message)`, which hands the page a data-channel message
 * as if the server had sent it.
 */

/**
 * @typedef {'loading'|'waiting'|'prejoin'|'joining'|'joined'|'left'|'error'} Phase
 * @typedef {{phase: Phase, error: string|null, errorMessage: string|null,
 *     participantId: string|null, joinClickedAt: number|null,
 *     firstRemoteFrame: Object<string, number>}} E2EState
 * @typedef {import('./protocol.js').ConnectionStats} ConnectionStats
 */

/**
 * Page state for the tests, kept current by app.js. `phase` is 'loading'
 * until the room is fetched and the camera and microphone have been tried.
 * @type {E2EState}
 */
export const e2e = {
    phase: 'loading',
    error: null,
    errorMessage: null,
    participantId: null,
    joinClickedAt: null,
    firstRemoteFrame: {},
};

const COLOR_SAMPLE_SIZE = 20;

/**
 * Installs the hooks on `window`.
 * @param {{collectStats: () => Promise<ConnectionStats>,
 *     videoOf: (participantId: string) => HTMLVideoElement|null,
 *     injectData?: (message: any) => void,
 *     sendEncoding: () => RTCRtpEncodingParameters|null,
 *     backgroundStats?: () => any,
 *     tuneBackground?: (tuning: {slowShare: number,
 *         slowWindowMs: number}) => void,
 *     useCanvas2d?: () => void}} sources
 */
export function installTestHooks(sources) {
    const target = /** @type {any} */ (window);
    target.e2e = e2e;
    target.e2eStats = () => sources.collectStats();
    target.e2eSendEncoding = () => sources.sendEncoding();
    target.e2eColor = (/** @type {string} */ participantId) => {
        const video = sources.videoOf(participantId);
        return video ? averageCentreColor(video) : null;
    };
    target.e2eInject = (/** @type {any} */ message) => sources.injectData?.(message);
    target.e2eBackground = () => sources.backgroundStats?.() ?? null;
    target.e2eTuneBackground = (/** @type {any} */ tuning) =>
        sources.tuneBackground?.(tuning);
    target.e2eBackgroundCanvas2d = () => sources.useCanvas2d?.();
}

/**
 * Records in `e2e.firstRemoteFrame` the time from the Join click to the
 * first frame the video presents, once per participant.
 * @param {string} participantId
 * @param {HTMLVideoElement} video
 */
export function watchFirstFrame(participantId, video) {
    if (participantId in e2e.firstRemoteFrame) {
        return;
    }
    const record = () => {
        if (participantId in e2e.firstRemoteFrame || e2e.joinClickedAt === null) {
            return;
        }
        e2e.firstRemoteFrame[participantId] = performance.now() - e2e.joinClickedAt;
    };
    if ('requestVideoFrameCallback' in video) {
        video.requestVideoFrameCallback(record);
    } else {
        video.addEventListener('loadeddata', record, {once: true});
    }
}

/**
 * Averages the centre COLOR_SAMPLE_SIZE x COLOR_SAMPLE_SIZE pixels of the
 * current video frame, in the video's own resolution.
 * @param {HTMLVideoElement} video
 * @returns {number[]|null} [r, g, b], or null before the first frame
 */
function averageCentreColor(video) {
    const size = COLOR_SAMPLE_SIZE;
    if (video.videoWidth < size || video.videoHeight < size) {
        return null;
    }
    const canvas = document.createElement('canvas');
    canvas.width = size;
    canvas.height = size;
    const context = canvas.getContext('2d', {willReadFrequently: true});
    if (!context) {
        return null;
    }
    const left = Math.floor((video.videoWidth - size) / 2);
    const top = Math.floor((video.videoHeight - size) / 2);
    context.drawImage(video, left, top, size, size, 0, 0, size, size);
    const pixels = context.getImageData(0, 0, size, size).data;
    const sums = [0, 0, 0];
    for (let i = 0; i < pixels.length; i += 4) {
        sums[0] += pixels[i];
        sums[1] += pixels[i + 1];
        sums[2] += pixels[i + 2];
    }
    const count = pixels.length / 4;
    return sums.map((sum) => Math.round(sum / count));
}

/**
 * The virtual background pipeline: person segmentation with MediaPipe's
 * selfie segmentation model (served from /vendor/, never from a CDN) and
 * compositing on a canvas, whose captured track is what the page sends. The
 * canvas composites with WebGL (compositor-gl.js) where the browser offers it,
 * and with a 2D context when it does not or when the WebGL context is lost.
 *
 * The model runs on a small copy of every second frame. The
 * pipeline measures the time each frame takes. When frames take too long for
 * a while, it lowers the frame rate, then the blur, and at last turns the
 * effect off, and passes the reason to the page in a notice.
 */

import {GlCompositor} from './compositor-gl.js';

const MODEL_DIR = '/vendor/@mediapipe/selfie_segmentation';
const MODEL_SCRIPT = `${MODEL_DIR}/selfie_segmentation.js`;
/** Size of the frame copy given to the model (its landscape input size). */
const MODEL_WIDTH = 256;
const MODEL_HEIGHT = 144;
/** Frame rates the pipeline steps down through when frames are too slow. */
export const FRAME_RATES = [15, 10, 6];
/** Blur radius in pixels for a 640-pixel-wide picture; scaled by width. */
const BLUR_RADIUS = {'blur-light': 6, 'blur-strong': 14};
/** Feathering of the mask edge, in pixels at 640 wide. */
const EDGE_RADIUS = 2;
/**
 * A frame is too slow when it takes more than this share of the frame
 * interval: the page then spends most of its main thread on the effect.
 */
const SLOW_SHARE = 0.7;
/** How long frames must stay too slow before the pipeline steps down. */
const SLOW_WINDOW_MS = 5000;
/** Weight of the newest frame in the average time per frame. */
const AVERAGE_WEIGHT = 0.1;
/**
 * The model runs on one output frame in this many and the others reuse its
 * last mask. The model is most of a frame's cost, and people at a desk move
 * little between two frames.
 */
const MODEL_EVERY = 2;

/**
 * @typedef {'none'|'blur-light'|'blur-strong'|string} BackgroundChoice
 * @typedef {{choice: BackgroundChoice, frameRate: number, msPerFrame: number,
 *     msModel: number, frames: number, segmented: number, modelReady: boolean,
 *     level: number, compositor: 'webgl'|'2d'}} EffectStats
 */

/** @type {Promise<any>|null} */
let modelScript = null;

/**
 * Loads the model's script once and returns its SelfieSegmentation class.
 * @returns {Promise<any>}
 */
function loadModelScript() {
    if (!modelScript) {
        modelScript = new Promise((resolve, reject) => {
            const script = document.createElement('script');
            script.src = MODEL_SCRIPT;
            script.onload = () => resolve(/** @type {any} */ (window).SelfieSegmentation);
            script.onerror = () => reject(new Error(`${MODEL_SCRIPT} failed to load`));
            document.head.append(script);
        });
        modelScript.catch(() => {
            modelScript = null;
        });
    }
    return modelScript;
}

/** @param {BackgroundChoice} choice */
export function isBlur(choice) {
    return choice === 'blur-light' || choice === 'blur-strong';
}

export class BackgroundEffect {
    /**
     * @param {{onchange: () => void,
     *     onnotice: (text: string) => void}} callbacks
     *     `onchange` runs when the track to send or the applied choice changed
     *     on its own; `onnotice` explains a change the person did not ask for.
     */
    constructor(callbacks) {
        this.callbacks = callbacks;
        /** The applied choice; 'none' sends the camera track as it is. */
        /** @type {BackgroundChoice} */
        this.choice = 'none';
        /** @type {ImageBitmap|null} */
        this.image = null;
        /** @type {MediaStreamTrack|null} */
        this.source = null;
        this.video = document.createElement('video');
        this.video.muted = true;
        this.video.playsInline = true;
        /** @type {GlCompositor|null} */
        this.gl = null;
        this.#makeCanvas(true);
        this.small = document.createElement('canvas');
        this.small.width = MODEL_WIDTH;
        this.small.height = MODEL_HEIGHT;
        this.smallContext = /** @type {CanvasRenderingContext2D} */ (
            this.small.getContext('2d'));
        /** @type {MediaStreamTrack|null} */
        this.track = null;
        /** @type {any} */
        this.model = null;
        /** @type {ImageBitmap|null} */
        this.mask = null;
        /** @type {number|null} */
        this.timer = null;
        this.running = false;
        /** When frames count as too slow; the browser tests change it. */
        this.tuning = {slowShare: SLOW_SHARE, slowWindowMs: SLOW_WINDOW_MS};
        this.resetMeasurements();
    }

    /**
     * Creates the output canvas, with a WebGL compositor when `tryWebgl` is
     * set and the browser offers WebGL, else with a 2D context.
     * @param {boolean} tryWebgl
     */
    #makeCanvas(tryWebgl) {
        this.canvas = document.createElement('canvas');
        this.gl = tryWebgl ? GlCompositor.create(this.canvas) : null;
        if (!this.gl) {
            // A canvas keeps its first context type, so 2D needs a new one.
            this.canvas = document.createElement('canvas');
        }
        this.context = this.gl ? null : /** @type {CanvasRenderingContext2D} */ (
            this.canvas.getContext('2d'));
    }

    /**
     * Switches to 2D compositing on a new canvas, so the page must pick up
     * the new track. The browser tests call it to check the fallback.
     */
    useCanvas2d() {
        if (!this.gl) {
            return;
        }
        console.warn('The background effect switched from WebGL to a 2D canvas.');
        const running = this.track !== null;
        this.track?.stop();
        this.track = null;
        this.#makeCanvas(false);
        if (running) {
            this.callbacks.onchange();
        }
    }

    resetMeasurements() {
        this.level = 0;
        this.msPerFrame = 0;
        /** Average milliseconds the model takes on a frame it runs on. */
        this.msModel = 0;
        this.frames = 0;
        this.segmented = 0;
        this.ticks = 0;
        /** @type {number|null} performance.now() when frames became too slow */
        this.slowSince = null;
    }

    /** @returns {number} the current target frame rate */
    get frameRate() {
        return FRAME_RATES[Math.min(this.level, FRAME_RATES.length - 1)];
    }

    /** @returns {EffectStats} */
    stats() {
        return {
            choice: this.choice,
            frameRate: this.frameRate,
            msPerFrame: Math.round(this.msPerFrame * 10) / 10,
            msModel: Math.round(this.msModel * 10) / 10,
            frames: this.frames,
            segmented: this.segmented,
            modelReady: Boolean(this.model),
            level: this.level,
            compositor: this.gl ? 'webgl' : '2d',
        };
    }

    /**
     * Applies a choice. Blur needs no image; a picture choice needs its
     * decoded image.
     * @param {BackgroundChoice} choice
     * @param {ImageBitmap|null} image
     */
    setChoice(choice, image = null) {
        this.choice = choice;
        this.image = image;
        this.resetMeasurements();
        if (choice === 'none') {
            this.#stop();
        } else {
            this.#loadModel();
        }
    }

    /**
     * Returns the track to send and preview for a camera track: the camera
     * itself without an effect, else the canvas track.
     * @param {MediaStreamTrack|null} cameraTrack
     * @returns {MediaStreamTrack|null}
     */
    output(cameraTrack) {
        if (this.choice === 'none' || !cameraTrack) {
            this.#stop();
            return cameraTrack;
        }
        if (this.source !== cameraTrack) {
            this.source = cameraTrack;
            this.video.srcObject = new MediaStream([cameraTrack]);
            this.video.play().catch((error) => {
                console.warn('The background effect could not play the camera:', error);
            });
        }
        if (!this.track || this.track.readyState === 'ended') {
            const settings = cameraTrack.getSettings();
            this.canvas.width = settings.width || 640;
            this.canvas.height = settings.height || 480;
            this.#drawFrame(false);
            this.track = this.canvas.captureStream(FRAME_RATES[0]).getVideoTracks()[0];
        }
        if (!this.running) {
            this.running = true;
            this.#schedule(0);
        }
        return this.track;
    }

    #stop() {
        this.running = false;
        if (this.timer !== null) {
            clearTimeout(this.timer);
            this.timer = null;
        }
        this.track?.stop();
        this.track = null;
        this.source = null;
        this.video.srcObject = null;
        this.mask?.close();
        this.mask = null;
    }

    async #loadModel() {
        if (this.model) {
            return;
        }
        try {
            const SelfieSegmentation = await loadModelScript();
            if (this.model) {
                return;
            }
            const model = new SelfieSegmentation({
                locateFile: (/** @type {string} */ file) => `${MODEL_DIR}/${file}`,
            });
            // 1 is the landscape model, made for 256x144 input.
            model.setOptions({modelSelection: 1, selfieMode: false});
            model.onResults((/** @type {any} */ results) => this.#onMask(results));
            await model.initialize();
            this.model = model;
        } catch (error) {
            console.error('The person segmentation model failed to load:', error);
            this.#turnOff('The background effect is off because its model failed'
                + ' to load. Reload the page to try again.');
        }
    }

    /** @param {any} results */
    async #onMask(results) {
        const mask = results.segmentationMask;
        try {
            const bitmap = await createImageBitmap(mask);
            this.mask?.close();
            this.mask = bitmap;
            this.segmented += 1;
        } catch (error) {
            console.warn('The segmentation mask could not be copied:', error);
        }
    }

    /** @param {number} delay milliseconds until the next frame */
    #schedule(delay) {
        this.timer = window.setTimeout(() => {
            this.timer = null;
            this.#tick().catch((error) => {
                console.error('The background effect failed on a frame:', error);
                this.#turnOff('The background effect is off because it failed'
                    + ' on a frame. Choose it again to retry.');
            });
        }, delay);
    }

    async #tick() {
        if (!this.running) {
            return;
        }
        const started = performance.now();
        const ready = this.video.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA;
        const due = this.ticks % MODEL_EVERY === 0 || !this.mask;
        this.ticks += 1;
        if (ready && this.model && due) {
            this.smallContext.drawImage(this.video, 0, 0, MODEL_WIDTH, MODEL_HEIGHT);
            await this.model.send({image: this.small});
            this.msModel += AVERAGE_WEIGHT
                * (performance.now() - started - this.msModel);
        }
        if (!this.running) {
            return;
        }
        if (this.gl?.lost) {
            this.useCanvas2d();
        }
        this.#drawFrame(ready);
        const elapsed = performance.now() - started;
        if (ready) {
            this.#measure(elapsed, started);
        }
        const interval = 1000 / this.frameRate;
        this.#schedule(Math.max(0, interval - elapsed));
    }

    /**
     * Draws one output frame. Until the model's first mask, and whenever the
     * camera has no picture yet, the whole frame is background, so the room
     * never receives the unprocessed camera while an effect is chosen.
     * @param {boolean} ready whether the camera has a frame
     */
    #drawFrame(ready) {
        const context = /** @type {CanvasRenderingContext2D} */ (this.context);
        const width = this.video.videoWidth || this.canvas.width;
        const height = this.video.videoHeight || this.canvas.height;
        if (this.canvas.width !== width || this.canvas.height !== height) {
            this.canvas.width = width;
            this.canvas.height = height;
        }
        const scale = width / 640;
        if (this.gl) {
            this.gl.draw({video: this.video, ready, mask: this.mask,
                blurRadius: isBlur(this.choice) ? BLUR_RADIUS[
                    /** @type {'blur-light'} */ (this.choice)] * scale : null,
                image: this.image, edgeRadius: EDGE_RADIUS * scale});
            return;
        }
        context.save();
        context.globalCompositeOperation = 'copy';
        if (ready && this.mask) {
            context.filter = `blur(${EDGE_RADIUS * scale}px)`;
            context.drawImage(this.mask, 0, 0, width, height);
            context.filter = 'none';
            context.globalCompositeOperation = 'source-in';
            context.drawImage(this.video, 0, 0, width, height);
            context.globalCompositeOperation = 'destination-over';
        }
        this.#drawBackground(ready, width, height, scale);
        context.restore();
    }

    /**
     * @param {boolean} ready
     * @param {number} width
     * @param {number} height
     * @param {number} scale
     */
    #drawBackground(ready, width, height, scale) {
        const context = /** @type {CanvasRenderingContext2D} */ (this.context);
        if (isBlur(this.choice)) {
            if (!ready) {
                context.fillStyle = '#333';
                context.fillRect(0, 0, width, height);
                return;
            }
            const radius = BLUR_RADIUS[/** @type {'blur-light'} */ (this.choice)];
            context.filter = `blur(${radius * scale}px)`;
            context.drawImage(this.video, 0, 0, width, height);
            context.filter = 'none';
            return;
        }
        if (this.image) {
            drawCover(context, this.image, width, height);
        } else {
            context.fillStyle = '#333';
            context.fillRect(0, 0, width, height);
        }
    }

    /**
     * Updates the average time per frame and steps the effect down when
     * frames have been too slow for SLOW_WINDOW_MS.
     * @param {number} elapsed milliseconds this frame took
     * @param {number} now
     */
    #measure(elapsed, now) {
        this.frames += 1;
        this.msPerFrame = this.frames === 1
            ? elapsed : this.msPerFrame + AVERAGE_WEIGHT * (elapsed - this.msPerFrame);
        // The first frames include the model's warm-up.
        if (!this.model || this.segmented < 5) {
            return;
        }
        const {slowShare, slowWindowMs} = this.tuning;
        const slow = this.msPerFrame > slowShare * (1000 / this.frameRate);
        if (!slow) {
            this.slowSince = null;
            return;
        }
        this.slowSince ??= now;
        if (now - this.slowSince >= slowWindowMs) {
            this.slowSince = null;
            this.#stepDown();
        }
    }

    #stepDown() {
        const ms = Math.round(this.msPerFrame);
        if (this.level < FRAME_RATES.length - 1) {
            this.level += 1;
            this.callbacks.onnotice(`Your computer needs ${ms} ms per frame for the`
                + ` background effect, so it now runs at ${this.frameRate} frames`
                + ' per second.');
            return;
        }
        if (this.choice === 'blur-strong') {
            this.choice = 'blur-light';
            this.callbacks.onnotice(`Your computer needs ${ms} ms per frame for the`
                + ' background effect, so the blur is now lighter.');
            this.callbacks.onchange();
            return;
        }
        this.#turnOff(`The background effect is off: your computer needed ${ms} ms`
            + ' per frame, too slow to keep your video smooth. Closing other'
            + ' programs or tabs may help before you choose it again.');
    }

    /** @param {string} notice */
    #turnOff(notice) {
        this.choice = 'none';
        this.image = null;
        this.#stop();
        this.callbacks.onnotice(notice);
        this.callbacks.onchange();
    }
}

/**
 * Draws an image to fill the canvas, cropped to its aspect ratio like CSS
 * `object-fit: cover`.
 * @param {CanvasRenderingContext2D} context
 * @param {ImageBitmap} image
 * @param {number} width
 * @param {number} height
 */
export function drawCover(context, image, width, height) {
    const scale = Math.max(width / image.width, height / image.height);
    const sourceWidth = width / scale;
    const sourceHeight = height / scale;
    context.drawImage(image,
        (image.width - sourceWidth) / 2, (image.height - sourceHeight) / 2,
        sourceWidth, sourceHeight, 0, 0, width, height);
}

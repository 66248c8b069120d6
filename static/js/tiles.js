/**
 * The grid of participant tiles. Each tile is
 * `<div class="tile" data-participant data-mic data-camera data-stream
 * data-status>` with a `video`, an initials placeholder, a mic-off icon, a
 * `.tile-name`, and a `.tile-info` with the status, goal and profile.
 * The stylesheet shows the placeholder and the icon from those attributes.
 */

import {renderPresence} from './tile-presence.js';
import {describeBackground} from './backgrounds.js';

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * @typedef {import('./protocol.js').MediaState} MediaState
 * @typedef {{id: string, name: string, local?: boolean,
 *     state: MediaState}} TileInfo
 */

/**
 * Returns up to two initials of a display name, e.g. "Ada Lovelace" -> "AL".
 * Each initial is the first letter or digit of a word, so punctuation is
 * skipped.
 * @param {string} name
 * @returns {string}
 */
export function initialsOf(name) {
    const initials = [];
    for (const word of name.split(/\s+/)) {
        const letter = word.match(/[\p{L}\p{N}]/u);
        if (letter) {
            initials.push(letter[0]);
        }
        if (initials.length === 2) {
            break;
        }
    }
    return initials.join('').toUpperCase() || '?';
}

/** @returns {SVGSVGElement} a crossed-out microphone icon */
function createMicOffIcon() {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('class', 'tile-mic-off');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '18');
    svg.setAttribute('height', '18');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', 'Microphone off');
    const paths = [
        'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z',
        'M5 11a7 7 0 0 0 14 0M12 18v3',
        'M4 4l16 16',
    ];
    for (const d of paths) {
        const path = document.createElementNS(SVG_NS, 'path');
        path.setAttribute('d', d);
        path.setAttribute('fill', 'none');
        path.setAttribute('stroke', 'currentColor');
        path.setAttribute('stroke-width', '2');
        path.setAttribute('stroke-linecap', 'round');
        svg.append(path);
    }
    return svg;
}

/** Participant tiles inside one container element. */
export class TileGrid {
    /** @param {HTMLElement} container */
    constructor(container) {
        this.container = container;
        /** @type {Map<string, HTMLElement>} */
        this.tiles = new Map();
        /** Audio output device id for remote tiles. Empty for the default. */
        this.sinkId = '';
        /** Remote videos muted because the browser blocked autoplay with sound. */
        /** @type {Set<HTMLVideoElement>} */
        this.blockedAudio = new Set();
        /** Called once per blocked video, so the page can offer to unmute. */
        /** @type {() => void} */
        this.onautoplayblocked = () => {};
        /** Called after a stream is attached to a remote tile's video. */
        /** @type {(id: string, video: HTMLVideoElement) => void} */
        this.onremotestream = () => {};
    }

    /** @returns {number} the number of tiles, the own one included */
    get size() {
        return this.tiles.size;
    }

    /**
     * Creates a tile or updates its name and state.
     * @param {TileInfo} info
     * @returns {HTMLElement}
     */
    upsert(info) {
        let tile = this.tiles.get(info.id);
        if (!tile) {
            tile = this.#createTile(info);
            this.tiles.set(info.id, tile);
            if (info.local) {
                this.container.prepend(tile);
            } else {
                this.container.append(tile);
            }
        }
        this.#setName(tile, info.name);
        this.setState(info.id, info.state);
        return tile;
    }

    /**
     * Moves a tile to a new participant id, as after a reconnect.
     * @param {string} oldId
     * @param {string} newId
     */
    rename(oldId, newId) {
        const tile = this.tiles.get(oldId);
        if (!tile || oldId === newId) {
            return;
        }
        this.tiles.delete(oldId);
        this.tiles.get(newId)?.remove();
        this.tiles.set(newId, tile);
        tile.dataset.participant = newId;
    }

    /**
     * @param {string} id
     * @param {MediaState} state
     */
    setState(id, state) {
        const tile = this.tiles.get(id);
        if (!tile) {
            return;
        }
        tile.dataset.mic = state.mic;
        tile.dataset.camera = state.camera;
        renderPresence(tile, state);
        renderBackground(tile, state.background);
    }

    /**
     * Shows a stream in a tile, or clears it with null. Remote tiles play
     * its audio through the chosen output device.
     * @param {string} id
     * @param {MediaStream|null} stream
     */
    setStream(id, stream) {
        const tile = this.tiles.get(id);
        const video = this.videoOf(id);
        if (!tile || !video) {
            return;
        }
        if (video.srcObject === stream) {
            return;
        }
        video.srcObject = stream;
        tile.dataset.stream = String(stream !== null && stream.getVideoTracks().length > 0);
        if (!stream) {
            return;
        }
        const local = tile.dataset.local === 'true';
        if (!local) {
            this.#applySink(video);
        }
        this.#play(video);
        if (!local) {
            this.onremotestream(id, video);
        }
    }

    /**
     * @param {string} id
     * @returns {HTMLVideoElement|null}
     */
    videoOf(id) {
        return this.tiles.get(id)?.querySelector('video') ?? null;
    }

    /** @param {string} id */
    remove(id) {
        const tile = this.tiles.get(id);
        if (!tile) {
            return;
        }
        const video = tile.querySelector('video');
        if (video) {
            video.srcObject = null;
            this.blockedAudio.delete(video);
        }
        tile.remove();
        this.tiles.delete(id);
    }

    /** Removes every tile. */
    clear() {
        for (const id of [...this.tiles.keys()]) {
            this.remove(id);
        }
    }

    /**
     * Routes the audio of all remote tiles to an output device.
     * @param {string} sinkId empty for the default device
     */
    setSinkId(sinkId) {
        this.sinkId = sinkId;
        for (const tile of this.tiles.values()) {
            const video = tile.querySelector('video');
            if (video && tile.dataset.local !== 'true') {
                this.#applySink(video);
            }
        }
    }

    /** Unmutes the videos whose autoplay with sound was blocked. */
    resumeAudio() {
        for (const video of this.blockedAudio) {
            video.muted = false;
            video.play().catch((error) => {
                console.warn('Could not play a remote video with sound:', error);
            });
        }
        this.blockedAudio.clear();
    }

    /**
     * @param {TileInfo} info
     * @returns {HTMLElement}
     */
    #createTile(info) {
        const tile = document.createElement('div');
        tile.className = 'tile';
        tile.dataset.participant = info.id;
        if (info.local) {
            tile.dataset.local = 'true';
        }
        tile.dataset.stream = 'false';

        const video = document.createElement('video');
        video.autoplay = true;
        video.playsInline = true;
        video.muted = Boolean(info.local);

        const placeholder = document.createElement('div');
        placeholder.className = 'tile-placeholder';
        const initials = document.createElement('span');
        initials.className = 'tile-initials';
        placeholder.append(initials);

        const label = document.createElement('div');
        label.className = 'tile-label';
        const name = document.createElement('span');
        name.className = 'tile-name';
        label.append(createMicOffIcon(), name);
        if (info.local) {
            const you = document.createElement('span');
            you.className = 'tile-you';
            you.textContent = '(you)';
            label.append(you);
        }

        tile.append(video, placeholder, label);
        return tile;
    }

    /**
     * @param {HTMLElement} tile
     * @param {string} name
     */
    #setName(tile, name) {
        const nameElement = tile.querySelector('.tile-name');
        const initialsElement = tile.querySelector('.tile-initials');
        if (nameElement) {
            nameElement.textContent = name;
        }
        if (initialsElement) {
            initialsElement.textContent = initialsOf(name);
        }
        tile.title = name;
    }

    /** @param {HTMLVideoElement} video */
    #applySink(video) {
        const media = /** @type {any} */ (video);
        if (typeof media.setSinkId !== 'function' || media.sinkId === this.sinkId) {
            return;
        }
        media.setSinkId(this.sinkId).catch((/** @type {Error} */ error) => {
            console.warn(`Could not use audio output "${this.sinkId}":`, error);
        });
    }

    /**
     * Starts playback. When the browser blocks sound without a user gesture,
     * plays muted and reports it, so video still shows.
     * @param {HTMLVideoElement} video
     */
    #play(video) {
        video.play().catch((error) => {
            if (error.name !== 'NotAllowedError' || video.muted) {
                return;
            }
            video.muted = true;
            this.blockedAudio.add(video);
            video.play().catch(() => {});
            this.onautoplayblocked();
        });
    }
}

/**
 * Shows a label on the tile when the participant uses a virtual background,
 * and its state value in `data-background`.
 * @param {HTMLElement} tile
 * @param {unknown} background the state field "background"
 */
function renderBackground(tile, background) {
    const text = describeBackground(background);
    tile.dataset.background = typeof background === 'string' ? background : 'none';
    let badge = /** @type {HTMLElement|null} */ (tile.querySelector('.tile-background'));
    if (!badge) {
        badge = document.createElement('span');
        badge.className = 'tile-background';
        tile.querySelector('.tile-label')?.append(badge);
    }
    badge.textContent = text;
    badge.title = text;
    badge.hidden = text === '';
}

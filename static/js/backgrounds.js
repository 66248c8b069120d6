/**
 * The virtual background menu: the choices the server offers (blur, the
 * built-in images, the room's uploads), uploading an image, and the choice
 * remembered in localStorage for the next visit.
 */

import {BackgroundEffect} from './segmentation.js';

const STORAGE_KEY = 'coworking.background';
export const CHOICE_LABELS = {
    'none': 'None',
    'blur-light': 'Blur (light)',
    'blur-strong': 'Blur (strong)',
};

/**
 * @typedef {import('./segmentation.js').BackgroundChoice} BackgroundChoice
 * @typedef {{id: string, label: string, url: string}} BuiltinEntry
 * @typedef {{id: string, url: string}} UploadEntry
 * @typedef {{builtin: BuiltinEntry[], uploads: UploadEntry[],
 *     uploads_enabled: boolean, max_bytes: number,
 *     max_pixels: number}} Catalogue
 */

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

/** @returns {BackgroundChoice} the choice saved last time, or 'none' */
function loadChoice() {
    try {
        return localStorage.getItem(STORAGE_KEY) || 'none';
    } catch {
        return 'none';
    }
}

/** @param {BackgroundChoice} choice */
function saveChoice(choice) {
    try {
        localStorage.setItem(STORAGE_KEY, choice);
    } catch (error) {
        console.warn('Could not store the background in localStorage:', error);
    }
}

/**
 * Describes a participant's background for their tile.
 * @param {unknown} choice the state field "background"
 * @returns {string} empty for no background
 */
export function describeBackground(choice) {
    if (choice === 'blur-light' || choice === 'blur-strong') {
        return 'Background blurred';
    }
    if (typeof choice === 'string'
            && (choice.startsWith('builtin:') || choice.startsWith('upload:'))) {
        return 'Virtual background';
    }
    return '';
}

export class BackgroundMenu {
    /**
     * @param {{roomId: string, token: string, onchange: () => void}} options
     *     `onchange` runs when the track to send or the background changed.
     */
    constructor(options) {
        this.roomId = options.roomId;
        this.token = options.token;
        this.onchange = options.onchange;
        /** @type {Catalogue} */
        this.catalogue = {builtin: [], uploads: [], uploads_enabled: false,
            max_bytes: 0, max_pixels: 0};
        /** The choice in the menu. The effect may have turned it down. */
        /** @type {BackgroundChoice} */
        this.selected = loadChoice();
        /** Counts choices, so a slow image load cannot undo a later choice. */
        this.generation = 0;
        this.effect = new BackgroundEffect({
            onchange: () => this.#onEffectChange(),
            onnotice: (text) => this.#notice(text),
        });
        this.ui = {
            /** @type {HTMLSelectElement} */ select: byId('background-select'),
            /** @type {HTMLElement} */ uploadField: byId('background-upload-field'),
            /** @type {HTMLInputElement} */ upload: byId('background-upload'),
            /** @type {HTMLElement} */ notice: byId('background-notice'),
        };
        this.ui.select.addEventListener('change', () => {
            this.choose(this.ui.select.value).catch((error) => {
                console.error('The background could not be applied:', error);
            });
        });
        this.ui.upload.addEventListener('change', () => {
            this.#uploadChosenFile().catch((error) => {
                console.error('The background upload failed:', error);
            });
        });
    }

    /** @returns {BackgroundChoice} the background applied to the video */
    get applied() {
        return this.effect.choice;
    }

    /**
     * Loads the catalogue from the server, fills the menu and applies the
     * remembered choice when the room still offers it.
     */
    async load() {
        try {
            const response = await fetch(
                `/api/rooms/${encodeURIComponent(this.roomId)}/backgrounds`,
                {headers: {Authorization: `Bearer ${this.token}`}});
            if (!response.ok) {
                throw new Error(`HTTP ${response.status}`);
            }
            this.catalogue = await response.json();
        } catch (error) {
            console.warn('The list of backgrounds failed to load:', error);
        }
        this.#render();
        await this.choose(this.#offers(this.selected) ? this.selected : 'none');
    }

    /**
     * Applies a choice: loads its image, hands it to the effect, remembers it.
     * @param {BackgroundChoice} choice
     */
    async choose(choice) {
        const generation = ++this.generation;
        this.selected = choice;
        this.ui.select.value = choice;
        saveChoice(choice);
        this.#notice('');
        let image = null;
        const url = this.#imageUrl(choice);
        if (url) {
            try {
                image = await this.#fetchImage(url);
            } catch (error) {
                console.warn('A background image failed to load:', error);
                this.#notice('This background image could not be loaded.'
                    + ' Choose another one.');
                choice = 'none';
            }
        }
        if (generation !== this.generation) {
            image?.close();
            return;
        }
        this.effect.setChoice(choice, image);
        this.ui.select.value = choice;
        this.onchange();
    }

    /**
     * @param {BackgroundChoice} choice
     * @returns {string|null} the image URL of a picture choice
     */
    #imageUrl(choice) {
        const [kind, id] = choice.split(':');
        if (kind === 'builtin') {
            return this.catalogue.builtin.find((entry) => entry.id === id)?.url ?? null;
        }
        if (kind === 'upload') {
            return this.catalogue.uploads.find((entry) => entry.id === id)?.url ?? null;
        }
        return null;
    }

    /**
     * @param {BackgroundChoice} choice
     * @returns {boolean} whether the menu offers the choice
     */
    #offers(choice) {
        return choice in CHOICE_LABELS || this.#imageUrl(choice) !== null;
    }

    /**
     * @param {string} url
     * @returns {Promise<ImageBitmap>}
     */
    async #fetchImage(url) {
        const headers = url.startsWith('/api/')
            ? {Authorization: `Bearer ${this.token}`} : undefined;
        const response = await fetch(url, {headers});
        if (!response.ok) {
            throw new Error(`HTTP ${response.status} for ${url}`);
        }
        return createImageBitmap(await response.blob());
    }

    /** Fills the menu from the catalogue. */
    #render() {
        const options = Object.entries(CHOICE_LABELS).map(
            ([value, label]) => option(value, label));
        if (this.catalogue.builtin.length > 0) {
            const group = document.createElement('optgroup');
            group.label = 'Pictures';
            group.append(...this.catalogue.builtin.map(
                (entry) => option(`builtin:${entry.id}`, entry.label)));
            options.push(group);
        }
        if (this.catalogue.uploads.length > 0) {
            const group = document.createElement('optgroup');
            group.label = 'Uploaded in this room';
            group.append(...this.catalogue.uploads.map((entry, index) =>
                option(`upload:${entry.id}`, `Upload ${index + 1}`)));
            options.push(group);
        }
        this.ui.select.replaceChildren(...options);
        this.ui.select.value = this.selected;
        this.ui.uploadField.hidden = !this.catalogue.uploads_enabled;
    }

    async #uploadChosenFile() {
        const file = this.ui.upload.files?.[0];
        if (!file) {
            return;
        }
        this.ui.upload.value = '';
        if (file.size > this.catalogue.max_bytes) {
            this.#notice(`The file has ${file.size} bytes; the limit is`
                + ` ${this.catalogue.max_bytes} bytes. Choose a smaller PNG, JPEG`
                + ' or WebP image.');
            return;
        }
        this.#notice('Uploading…');
        const response = await fetch(
            `/api/rooms/${encodeURIComponent(this.roomId)}/backgrounds`, {
                method: 'POST',
                headers: {Authorization: `Bearer ${this.token}`},
                body: file,
            });
        const body = await response.json().catch(() => null);
        if (!response.ok) {
            this.#notice(body?.error?.message
                ?? `The upload failed (HTTP ${response.status}).`);
            return;
        }
        this.catalogue.uploads.push(body.upload);
        this.#render();
        await this.choose(`upload:${body.upload.id}`);
    }

    #onEffectChange() {
        this.ui.select.value = this.effect.choice;
        this.onchange();
    }

    /** @param {string} text empty hides the notice */
    #notice(text) {
        this.ui.notice.textContent = text;
        this.ui.notice.hidden = text === '';
    }
}

/**
 * @param {string} value
 * @param {string} label
 * @returns {HTMLOptionElement}
 */
function option(value, label) {
    const element = document.createElement('option');
    element.value = value;
    element.textContent = label;
    return element;
}

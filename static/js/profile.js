/**
 * The own presence controls: the status menu, the goal for the session and
 * the profile card form. The profile and the browser key are kept in
 * localStorage for the next visit. The goal is not, because it belongs to
 * one session.
 */

import {
    GOAL_MAX_LENGTH,
    PROFILE_LIMITS,
    PresenceState,
    STATUS_LABELS,
    linkProblem,
    watchActivity,
} from './presence.js';

const PROFILE_STORAGE_KEY = 'coworking.profile';
// Control and format characters, which the server rejects, except the
// zero-width joiner that emoji sequences need and the server accepts.
const FORBIDDEN_CHARACTERS = /(?!\u200d)[\p{Cc}\p{Cf}]/gu;
const CLIENT_KEY_STORAGE_KEY = 'coworking.client';

/**
 * @typedef {import('./tile-presence.js').Profile} Profile
 * @typedef {import('./tile-presence.js').Presence} Presence
 */

/**
 * Returns this browser's random key, made on first use. The server uses it
 * to keep a removed guest out of the room. Clearing the site's data makes
 * a new one.
 * @returns {string}
 */
export function clientKey() {
    try {
        const stored = localStorage.getItem(CLIENT_KEY_STORAGE_KEY);
        if (stored && /^[A-Za-z0-9_-]{16,64}$/.test(stored)) {
            return stored;
        }
    } catch {
        // Storage may be blocked; a key for this page load is used then.
    }
    const bytes = crypto.getRandomValues(new Uint8Array(18));
    const key = btoa(String.fromCharCode(...bytes))
        .replace(/\+/g, '-').replace(/\//g, '_');
    try {
        localStorage.setItem(CLIENT_KEY_STORAGE_KEY, key);
    } catch (error) {
        console.warn('Could not store the browser key in localStorage:', error);
    }
    return key;
}

/** @returns {Profile|null} the stored profile, if it is well formed */
function loadProfile() {
    try {
        const value = JSON.parse(localStorage.getItem(PROFILE_STORAGE_KEY) ?? 'null');
        if (value && typeof value.role === 'string' && typeof value.work === 'string'
                && typeof value.open_to_chat === 'boolean'
                && typeof value.link === 'string' && linkProblem(value.link) === '') {
            return {
                role: value.role.slice(0, PROFILE_LIMITS.role),
                work: value.work.slice(0, PROFILE_LIMITS.work),
                open_to_chat: value.open_to_chat,
                link: value.link,
            };
        }
    } catch {
        // A broken stored value counts as no profile.
    }
    return null;
}

/** @param {Profile|null} profile */
function storeProfile(profile) {
    try {
        if (profile) {
            localStorage.setItem(PROFILE_STORAGE_KEY, JSON.stringify(profile));
        } else {
            localStorage.removeItem(PROFILE_STORAGE_KEY);
        }
    } catch (error) {
        console.warn('Could not store the profile in localStorage:', error);
    }
}

/**
 * @param {string} id
 * @returns {any}
 */
function byId(id) {
    const element = document.getElementById(id);
    if (!element) {
        throw new Error(`room.html has no element #${id}.`);
    }
    return element;
}

/** The own status, goal and profile, and the controls that change them. */
export class OwnPresence {
    constructor() {
        this.state = new PresenceState();
        this.goal = '';
        /** @type {Profile|null} */
        this.profile = loadProfile();
        /** Called whenever the presence to publish changed. */
        this.onchange = () => {};

        this.ui = {
            /** @type {HTMLSelectElement} */ status: byId('status-select'),
            /** @type {HTMLFormElement} */ goalForm: byId('goal-form'),
            /** @type {HTMLInputElement} */ goal: byId('goal-input'),
            /** @type {HTMLButtonElement} */ editProfile: byId('edit-profile'),
            /** @type {HTMLDialogElement} */ dialog: byId('profile-dialog'),
            /** @type {HTMLFormElement} */ form: byId('profile-form'),
            /** @type {HTMLInputElement} */ role: byId('profile-role'),
            /** @type {HTMLInputElement} */ work: byId('profile-work'),
            /** @type {HTMLInputElement} */ openToChat: byId('profile-open'),
            /** @type {HTMLInputElement} */ link: byId('profile-link'),
            /** @type {HTMLElement} */ error: byId('profile-error'),
            /** @type {HTMLButtonElement} */ clear: byId('profile-clear'),
            /** @type {HTMLButtonElement} */ cancel: byId('profile-cancel'),
        };
        this.#fillStatusMenu();
        this.#bind();
        watchActivity((idle) => {
            this.state.setIdle(idle);
            this.#changed();
        });
    }

    /** @returns {Presence} the fields to add to the published state */
    fields() {
        return {status: this.state.status, goal: this.goal, profile: this.profile};
    }

    /**
     * Applies a `clock` message from the server.
     * @param {any} message
     */
    onClock(message) {
        if (typeof message?.phase === 'string') {
            this.state.setPhase(message.phase);
            this.#changed();
        }
    }

    #fillStatusMenu() {
        const automatic = document.createElement('option');
        automatic.value = '';
        automatic.textContent = 'Automatic';
        const options = Object.entries(STATUS_LABELS).map(([value, label]) => {
            const option = document.createElement('option');
            option.value = value;
            option.textContent = label;
            return option;
        });
        this.ui.status.replaceChildren(automatic, ...options);
    }

    #bind() {
        this.ui.goal.maxLength = GOAL_MAX_LENGTH;
        this.ui.role.maxLength = PROFILE_LIMITS.role;
        this.ui.work.maxLength = PROFILE_LIMITS.work;
        this.ui.status.addEventListener('change', () => {
            const value = /** @type {any} */ (this.ui.status.value || null);
            this.state.setManual(value);
            this.#changed();
        });
        this.ui.goalForm.addEventListener('submit', (event) => {
            event.preventDefault();
            this.#setGoal();
        });
        this.ui.goal.addEventListener('change', () => this.#setGoal());
        this.ui.editProfile.addEventListener('click', () => this.#openDialog());
        this.ui.form.addEventListener('submit', (event) => {
            event.preventDefault();
            this.#saveProfile();
        });
        this.ui.clear.addEventListener('click', () => {
            this.profile = null;
            storeProfile(null);
            this.ui.dialog.close();
            this.#changed();
        });
        this.ui.cancel.addEventListener('click', () => this.ui.dialog.close());
    }

    #setGoal() {
        // Control characters cannot be typed, but may be pasted.
        const goal = this.ui.goal.value.replace(FORBIDDEN_CHARACTERS, '').trim()
            .slice(0, GOAL_MAX_LENGTH);
        this.ui.goal.value = goal;
        if (goal !== this.goal) {
            this.goal = goal;
            this.#changed();
        }
    }

    #openDialog() {
        const profile = this.profile;
        this.ui.role.value = profile?.role ?? '';
        this.ui.work.value = profile?.work ?? '';
        this.ui.openToChat.checked = profile?.open_to_chat ?? true;
        this.ui.link.value = profile?.link ?? '';
        this.ui.error.hidden = true;
        this.ui.dialog.showModal();
    }

    #saveProfile() {
        const clean = (/** @type {string} */ value) => value
            .replace(FORBIDDEN_CHARACTERS, '').trim();
        const link = clean(this.ui.link.value);
        const problem = linkProblem(link);
        if (problem) {
            this.ui.error.textContent = problem;
            this.ui.error.hidden = false;
            this.ui.link.setAttribute('aria-invalid', 'true');
            this.ui.link.focus();
            return;
        }
        this.ui.link.removeAttribute('aria-invalid');
        this.profile = {
            role: clean(this.ui.role.value).slice(0, PROFILE_LIMITS.role),
            work: clean(this.ui.work.value).slice(0, PROFILE_LIMITS.work),
            open_to_chat: this.ui.openToChat.checked,
            link,
        };
        storeProfile(this.profile);
        this.ui.dialog.close();
        this.#changed();
    }

    #changed() {
        this.ui.status.title = `Shown to others: ${STATUS_LABELS[this.state.status]}`;
        this.onchange();
    }
}

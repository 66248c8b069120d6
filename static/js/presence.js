/**
 * Presence of the own participant: the status, set by the session clock,
 * by inactivity and by the person, and the checks shared with the profile
 * form. No DOM code except the activity watcher.
 *
 * Rules, in order:
 * 1. A status the person chose wins.
 * 2. During a focus phase the status is "focus". People work in other
 *    windows then, so a hidden tab or no input on the page does not make
 *    them away.
 * 3. Otherwise, no input on the page or a hidden tab for IDLE_AFTER_MS makes
 *    the status "away". Input or a visible tab again returns it to the
 *    clock's status.
 * 4. In a break or long break the status is "break", otherwise "available".
 * A clock phase change drops a chosen "focus" or "break", because the clock
 * leads those. A chosen "away", "dnd" or "back_soon" stays until changed.
 */

/** @typedef {'available'|'focus'|'break'|'away'|'dnd'|'back_soon'} Status */

/** Status values and their labels, in the order the status menu lists them. */
export const STATUS_LABELS = {
    available: 'Available',
    focus: 'Focusing',
    break: 'On a break',
    away: 'Away',
    dnd: 'Do not disturb',
    back_soon: 'Back soon',
};

export const IDLE_AFTER_MS = 5 * 60 * 1000;
const IDLE_CHECK_MS = 10 * 1000;
const ACTIVITY_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart'];

export const GOAL_MAX_LENGTH = 140;
export const PROFILE_LIMITS = {role: 64, work: 200};
export const LINK_MAX_LENGTH = 300;

/** Clock phases that make the automatic status "break". */
const BREAK_PHASES = new Set(['break', 'long_break']);
/** Chosen statuses that the next clock phase replaces. */
const CLOCK_LED = new Set(['focus', 'break']);

export class PresenceState {
    constructor() {
        /** @type {Status|null} The person's choice; null for automatic. */
        this.manual = null;
        /** Phase of the session clock: idle, focus, break, long_break, ended. */
        this.phase = 'idle';
        /** Whether the page has seen no input, or been hidden, for a while. */
        this.idle = false;
    }

    /** @returns {Status} */
    get status() {
        if (this.manual) {
            return this.manual;
        }
        if (this.phase === 'focus') {
            return 'focus';
        }
        if (this.idle) {
            return 'away';
        }
        return BREAK_PHASES.has(this.phase) ? 'break' : 'available';
    }

    /**
     * Applies a `clock` message's phase.
     * @param {string} phase
     */
    setPhase(phase) {
        if (phase === this.phase) {
            return;
        }
        this.phase = phase;
        if (this.manual && CLOCK_LED.has(this.manual)) {
            this.manual = null;
        }
    }

    /** @param {boolean} idle */
    setIdle(idle) {
        this.idle = idle;
    }

    /** @param {Status|null} status null returns to the automatic status */
    setManual(status) {
        this.manual = status && status in STATUS_LABELS ? status : null;
    }
}

/**
 * Calls `onchange(idle)` when the page becomes idle (no input, or hidden,
 * for `idleAfterMs`) or active again.
 * @param {(idle: boolean) => void} onchange
 * @param {number} [idleAfterMs]
 * @returns {() => void} stops watching
 */
export function watchActivity(onchange, idleAfterMs = IDLE_AFTER_MS) {
    let lastInput = performance.now();
    let hiddenSince = document.hidden ? performance.now() : null;
    let idle = false;
    const update = () => {
        const now = performance.now();
        const next = now - lastInput >= idleAfterMs
            || (hiddenSince !== null && now - hiddenSince >= idleAfterMs);
        if (next !== idle) {
            idle = next;
            onchange(idle);
        }
    };
    const onInput = () => {
        lastInput = performance.now();
        if (idle) {
            update();
        }
    };
    const onVisibility = () => {
        hiddenSince = document.hidden ? performance.now() : null;
        if (!document.hidden) {
            lastInput = performance.now();
        }
        update();
    };
    for (const type of ACTIVITY_EVENTS) {
        document.addEventListener(type, onInput, {passive: true});
    }
    document.addEventListener('visibilitychange', onVisibility);
    const timer = setInterval(update, Math.min(IDLE_CHECK_MS, idleAfterMs));
    return () => {
        clearInterval(timer);
        for (const type of ACTIVITY_EVENTS) {
            document.removeEventListener(type, onInput);
        }
        document.removeEventListener('visibilitychange', onVisibility);
    };
}

/**
 * Checks a profile link as the server does.
 * @param {string} link
 * @returns {string} an error message, or '' when the link is usable or empty
 */
export function linkProblem(link) {
    if (!link) {
        return '';
    }
    if (link.length > LINK_MAX_LENGTH) {
        return `The link can have at most ${LINK_MAX_LENGTH} characters.`;
    }
    if (/\s/.test(link)) {
        return 'The link must not contain spaces.';
    }
    let url;
    try {
        url = new URL(link);
    } catch {
        return 'The link is not a valid address.';
    }
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
        return 'The link must start with http:// or https://.';
    }
    return '';
}

/**
 * Returns a link's URL if it is safe to put in an `href`: http or https only.
 * @param {unknown} link
 * @returns {string|null}
 */
export function safeHref(link) {
    if (typeof link !== 'string' || !link || linkProblem(link) !== '') {
        return null;
    }
    return new URL(link).href;
}

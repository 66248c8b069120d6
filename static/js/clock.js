/**
 * The shared session clock: shows the server's phase and remaining time,
 * marks each phase change with a chime and a notice, and gives hosts the
 * controls. The server owns the clock; this page only displays its `clock`
 * messages and never runs its own timer for the phases.
 */

/**
 * @typedef {'idle'|'focus'|'break'|'long_break'|'ended'} ClockPhase
 * @typedef {{type: 'clock', phase: ClockPhase, round: number, rounds: number,
 *     started_at: number, ends_at: number|null, paused: boolean,
 *     remaining_ms: number|null,
 *     plan: {focus: number, break: number, long_break: number, rounds: number},
 *     now: number}} ClockMessage
 */

const PHASES = new Set(['idle', 'focus', 'break', 'long_break', 'ended']);
const RENDER_INTERVAL_MS = 200;
const NOTICE_MS = 8000;

const PHASE_LABELS = {
    idle: 'Not started',
    focus: 'Focus',
    break: 'Break',
    long_break: 'Long break',
    ended: 'Session ended',
};

const PHASE_NOTICES = {
    focus: 'Focus time. Microphones are muted; unmute if you need to talk.',
    break: 'Break time. You can unmute and talk.',
    long_break: 'Long break. You can unmute and talk.',
    ended: 'The session has ended.',
};

/** Host actions with their button labels, in display order. */
const HOST_BUTTONS = [
    ['start', 'Start session'],
    ['pause', 'Pause'],
    ['resume', 'Resume'],
    ['skip', 'Skip to next phase'],
    ['end', 'End session'],
];

/**
 * Checks the fields this page reads from a `clock` message.
 * @param {any} message
 * @returns {message is ClockMessage}
 */
export function isClockMessage(message) {
    return message?.type === 'clock'
        && PHASES.has(message.phase)
        && Number.isFinite(message.now)
        && Number.isFinite(message.started_at)
        && (message.ends_at === null || Number.isFinite(message.ends_at))
        && typeof message.paused === 'boolean';
}

/**
 * Formats milliseconds as m:ss, or h:mm:ss from an hour on. Rounds up, so
 * the display reaches 0:00 when the phase ends.
 * @param {number} ms
 * @returns {string}
 */
export function formatRemaining(ms) {
    const total = Math.max(0, Math.ceil(ms / 1000));
    const hours = Math.floor(total / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = String(total % 60).padStart(2, '0');
    if (hours > 0) {
        return `${hours}:${String(minutes).padStart(2, '0')}:${seconds}`;
    }
    return `${minutes}:${seconds}`;
}

/** The clock bar of the room page. */
export class SessionClock {
    /**
     * @param {HTMLElement} container element that receives the clock bar
     * @param {(action: string) => void} sendHostAction
     */
    constructor(container, sendHostAction) {
        this.sendHostAction = sendHostAction;
        /** @type {ClockMessage|null} */
        this.state = null;
        /** Server time minus local time, in milliseconds. */
        this.offsetMs = 0;
        this.isHost = false;
        /** Key of the last phase reported as new, kept across reconnects. */
        this.phaseKey = '';
        /**
         * Called for each clock message; `fresh` is true for a phase this
         * page had not seen yet, false for repeats such as pause or resume.
         * @type {(message: ClockMessage, fresh: boolean) => void}
         */
        this.onphase = () => {};
        /** @type {number|undefined} */
        this.renderTimer = undefined;
        /** @type {number|undefined} */
        this.noticeTimer = undefined;
        /** @type {AudioContext|null} */
        this.audio = null;

        this.root = document.createElement('div');
        this.root.className = 'clock';
        this.root.dataset.phase = 'idle';
        this.phaseLabel = document.createElement('span');
        this.phaseLabel.className = 'clock-phase';
        this.time = document.createElement('span');
        this.time.className = 'clock-time';
        this.time.id = 'clock-time';
        this.round = document.createElement('span');
        this.round.className = 'clock-round';
        this.notice = document.createElement('p');
        this.notice.className = 'clock-notice';
        this.notice.id = 'clock-notice';
        this.notice.setAttribute('role', 'status');
        this.notice.hidden = true;
        this.controls = document.createElement('div');
        this.controls.className = 'clock-controls';
        this.controls.hidden = true;
        /** @type {Map<string, HTMLButtonElement>} */
        this.buttons = new Map();
        for (const [action, label] of HOST_BUTTONS) {
            const button = document.createElement('button');
            button.type = 'button';
            button.id = `clock-${action}`;
            button.textContent = label;
            button.addEventListener('click', () => this.sendHostAction(action));
            this.buttons.set(action, button);
            this.controls.append(button);
        }
        this.root.append(this.phaseLabel, this.time, this.round, this.controls);
        container.append(this.root, this.notice);
        this.#render();
    }

    /** @param {boolean} isHost whether to show the host controls */
    setHost(isHost) {
        this.isHost = isHost;
        this.#render();
    }

    /**
     * Takes a `clock` message from the server.
     * @param {any} message
     * @returns {boolean} whether the message was a valid clock message
     */
    update(message) {
        if (!isClockMessage(message)) {
            console.warn('Ignored an invalid clock message.');
            return false;
        }
        this.offsetMs = message.now - Date.now();
        const previous = this.state;
        this.state = message;
        const key = `${message.phase}:${message.round}:${message.started_at}`;
        const fresh = key !== this.phaseKey;
        this.phaseKey = key;
        // The first message of a page load (or a phase that was already
        // running) is caught up with quietly; only real changes chime.
        if (fresh && previous !== null && message.phase !== 'idle') {
            this.#announce(message);
        }
        clearInterval(this.renderTimer);
        this.renderTimer = window.setInterval(() => this.#render(), RENDER_INTERVAL_MS);
        this.#render();
        this.onphase(message, fresh);
        return true;
    }

    /** @returns {number|null} milliseconds left in the phase, or null */
    remainingMs() {
        const state = this.state;
        if (!state) {
            return null;
        }
        if (state.paused) {
            return state.remaining_ms;
        }
        if (state.ends_at === null) {
            return null;
        }
        return Math.max(0, state.ends_at - (Date.now() + this.offsetMs));
    }

    /** @returns {boolean} whether a focus phase is on, paused or not */
    inFocus() {
        return this.state?.phase === 'focus';
    }

    /** Stops the display timer, as on leaving the room. */
    stop() {
        clearInterval(this.renderTimer);
        clearTimeout(this.noticeTimer);
        this.renderTimer = undefined;
        this.state = null;
        this.notice.hidden = true;
        this.#render();
    }

    /**
     * Shows a notice under the clock for a while.
     * @param {string} text shown as text
     */
    showNotice(text) {
        this.notice.textContent = text;
        this.notice.hidden = false;
        clearTimeout(this.noticeTimer);
        this.noticeTimer = window.setTimeout(() => {
            this.notice.hidden = true;
        }, NOTICE_MS);
    }

    /** @param {ClockMessage} message */
    #announce(message) {
        const notice = PHASE_NOTICES[/** @type {keyof PHASE_NOTICES} */ (message.phase)];
        if (notice) {
            this.showNotice(notice);
        }
        this.#chime(message.phase);
    }

    /**
     * Plays a soft two-note chime made with WebAudio: rising into a break,
     * falling into focus.
     * @param {ClockPhase} phase
     */
    #chime(phase) {
        try {
            this.audio ??= new AudioContext();
            const context = this.audio;
            context.resume().catch(() => {});
            const notes = phase === 'focus' ? [659.25, 523.25] : [523.25, 659.25];
            notes.forEach((frequency, index) => {
                const start = context.currentTime + index * 0.35;
                const oscillator = context.createOscillator();
                const gain = context.createGain();
                oscillator.type = 'sine';
                oscillator.frequency.value = frequency;
                gain.gain.setValueAtTime(0, start);
                gain.gain.linearRampToValueAtTime(0.12, start + 0.03);
                gain.gain.exponentialRampToValueAtTime(0.0001, start + 1.2);
                oscillator.connect(gain).connect(context.destination);
                oscillator.start(start);
                oscillator.stop(start + 1.25);
            });
        } catch (error) {
            console.warn('Could not play the phase chime:', error);
        }
    }

    #render() {
        const state = this.state;
        const phase = state?.phase ?? 'idle';
        this.root.dataset.phase = phase;
        this.root.dataset.paused = String(Boolean(state?.paused));
        const label = PHASE_LABELS[phase];
        this.phaseLabel.textContent = state?.paused ? `${label} (paused)` : label;
        const remaining = this.remainingMs();
        this.time.textContent = remaining === null ? '' : formatRemaining(remaining);
        this.time.dataset.remainingMs = remaining === null ? '' : String(remaining);
        const rounds = state?.rounds ?? 0;
        this.round.textContent = state && state.round > 0 && phase !== 'ended'
            ? (rounds > 0 ? `Round ${state.round} of ${rounds}` : `Round ${state.round}`)
            : '';

        this.controls.hidden = !this.isHost;
        const running = phase === 'focus' || phase === 'break' || phase === 'long_break';
        const shown = {
            start: !running,
            pause: running && !state?.paused,
            resume: running && Boolean(state?.paused),
            skip: running,
            end: running,
        };
        for (const [action, button] of this.buttons) {
            button.hidden = !shown[/** @type {keyof shown} */ (action)];
        }
    }
}

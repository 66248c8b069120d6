/**
 * Sessions on the room page: the list of upcoming slots with booking, the
 * host's schedule form, and the waiting page of an invite bound to a slot.
 *
 * The page keeps its bookings (id, cancel secret, slot) in localStorage, so
 * the booker can cancel later and the join message can name the booking for
 * attendance. All server text is set as textContent, never as HTML.
 */

const BOOKINGS_STORAGE_PREFIX = 'coworking.bookings.';
const REFRESH_INTERVAL_MS = 30000;
const COUNTDOWN_INTERVAL_MS = 250;
/** Interval at which a waiting page requests the room again: the host may move
 * the slot. */
const WAITING_RECHECK_MS = 60000;
const WINDOW_CODES = new Set(['slot_not_open', 'slot_ended', 'slot_cancelled']);

/**
 * @typedef {{focus: number, break: number, long_break: number,
 *     rounds_before_long: number}} Plan
 * @typedef {{id: string, title: string, starts_at: string, ends_at: string,
 *     length: number, plan: Plan, capacity: number, booked: number,
 *     cancelled: boolean, bookings?: BookingInfo[]}} SlotInfo
 * @typedef {{id: string, name: string, cancelled: boolean,
 *     attendance?: string}} BookingInfo
 * @typedef {{id: string, secret: string, slotId: string, name: string,
 *     startsAt: string, endsAt: string}} OwnBooking
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

/** @param {string} tag @param {string} [className] @param {string} [text] */
function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) {
        node.className = className;
    }
    if (text !== undefined) {
        node.textContent = text;
    }
    return node;
}

const state = {
    roomId: '',
    token: '',
    role: 'guest',
    earlyMinutes: 10,
    /** @type {HTMLInputElement|null} */
    nameInput: null,
    /** @type {SlotInfo[]} */
    slots: [],
    /** @type {string|null} id of the slot the host form edits */
    editing: null,
    /** @type {Map<string, string>} slot id -> bound invite link made here */
    slotLinks: new Map(),
};

// ---------------------------------------------------------------------------
// Own bookings in localStorage

/** @returns {OwnBooking[]} */
function ownBookings() {
    try {
        const parsed = JSON.parse(
            localStorage.getItem(BOOKINGS_STORAGE_PREFIX + state.roomId) ?? '[]');
        return Array.isArray(parsed)
            ? parsed.filter((b) => b && typeof b.id === 'string'
                && typeof b.secret === 'string' && typeof b.slotId === 'string')
            : [];
    } catch {
        return [];
    }
}

/** @param {OwnBooking[]} bookings */
function saveOwnBookings(bookings) {
    // Bookings of slots that ended a day ago are no longer useful.
    const cutoff = Date.now() - 86400000;
    const kept = bookings.filter((b) => Date.parse(b.endsAt) > cutoff);
    try {
        localStorage.setItem(BOOKINGS_STORAGE_PREFIX + state.roomId,
            JSON.stringify(kept));
    } catch (error) {
        console.warn('Could not save the booking in localStorage:', error);
    }
}

/**
 * Returns the booking to name in the join message: the one whose slot is
 * open now (from the early minutes before its start to its end).
 * @param {string} roomId
 * @returns {{id: string, secret: string}|null}
 */
export function currentBookingRef(roomId) {
    if (roomId !== state.roomId) {
        return null;
    }
    const now = Date.now();
    const early = state.earlyMinutes * 60000;
    const open = ownBookings().find((b) => Date.parse(b.startsAt) - early <= now
        && now < Date.parse(b.endsAt));
    return open ? {id: open.id, secret: open.secret} : null;
}

// ---------------------------------------------------------------------------
// Server requests

/**
 * @param {string} method
 * @param {string} path below /api/rooms/ROOM_ID
 * @param {object} [body]
 * @returns {Promise<{ok: boolean, status: number, body: any}>}
 */
async function request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = {Authorization: `Bearer ${state.token}`};
    if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
    }
    const url = `/api/rooms/${encodeURIComponent(state.roomId)}${path}`;
    try {
        const response = await fetch(url, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
            cache: 'no-store',
        });
        const parsed = await response.json().catch(() => null);
        return {ok: response.ok, status: response.status, body: parsed};
    } catch (error) {
        console.warn(`${method} ${path} failed:`, error);
        return {ok: false, status: 0, body: null};
    }
}

/** @param {{status: number, body: any}} result */
function errorText(result) {
    if (result.status === 0) {
        return 'The server could not be reached. Check your connection and try again.';
    }
    return result.body?.error?.message ?? `The request failed (HTTP ${result.status}).`;
}

// ---------------------------------------------------------------------------
// Formatting

/** @param {string} iso */
function formatStart(iso) {
    return new Date(iso).toLocaleString(undefined, {
        weekday: 'short', day: 'numeric', month: 'short',
        hour: '2-digit', minute: '2-digit',
    });
}

/** @param {string} iso */
function formatClock(iso) {
    return new Date(iso).toLocaleTimeString(undefined,
        {hour: '2-digit', minute: '2-digit'});
}

/** @param {number} seconds */
function formatPhase(seconds) {
    return seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`;
}

/** @param {Plan} plan */
export function describePlan(plan) {
    let text = `Focus ${formatPhase(plan.focus)} / break ${formatPhase(plan.break)}`;
    if (plan.rounds_before_long > 0) {
        text += `, long break ${formatPhase(plan.long_break)}`
            + ` after every ${plan.rounds_before_long} rounds`;
    }
    return text;
}

/** @param {number} seconds */
function formatCountdown(seconds) {
    const whole = Math.max(0, Math.ceil(seconds));
    const days = Math.floor(whole / 86400);
    const hours = Math.floor(whole % 86400 / 3600);
    const minutes = Math.floor(whole % 3600 / 60);
    const rest = whole % 60;
    const clock = [hours, minutes, rest].map((n) => String(n).padStart(2, '0'))
        .join(':');
    return days > 0 ? `${days} d ${clock}` : clock;
}

/** @param {Date} date @returns {string} the value of a datetime-local input */
function localInputValue(date) {
    const pad = (/** @type {number} */ n) => String(n).padStart(2, '0');
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`
        + `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

// ---------------------------------------------------------------------------
// Waiting page of a slot-bound invite

/**
 * Shows why a slot-bound invite does not admit yet. For `slot_not_open` it
 * counts down and resolves true when the window opens, or after a minute, so
 * that the caller requests the room again. For a session that is over or
 * cancelled it resolves false at once.
 * @param {any} body the 403 answer of the room request
 * @returns {Promise<boolean>}
 */
export function waitForSlotWindow(body) {
    const code = body?.error?.code;
    if (code !== 'slot_not_open' || typeof body.opens_at !== 'string') {
        return Promise.resolve(false);
    }
    const section = byId('waiting');
    const slot = body.slot ?? {};
    const roomName = typeof body.room?.name === 'string' ? body.room.name : '';
    byId('waiting-title').textContent = slot.title || roomName || 'Coworking session';
    let when = `The session starts ${formatStart(slot.starts_at)} and ends at`
        + ` ${formatClock(slot.ends_at)}.`;
    if (body.opens_at !== slot.starts_at) {
        when += ` The room opens at ${formatClock(body.opens_at)}.`;
    }
    byId('waiting-when').textContent = when;
    section.hidden = false;

    // Count with the server's clock: the page's clock may be off.
    const offset = Date.parse(body.server_time) - Date.now();
    const opensAt = Date.parse(body.opens_at);
    const countdown = byId('waiting-countdown');
    const shownAt = Date.now();
    const recheckAt = shownAt + WAITING_RECHECK_MS;
    return new Promise((resolve) => {
        const tick = () => {
            const remaining = (opensAt - (Date.now() + (offset || 0))) / 1000;
            countdown.textContent = `Opens in ${formatCountdown(remaining)}`;
            countdown.dataset.seconds = String(Math.max(0, Math.ceil(remaining)));
            // The second's wait keeps a page whose clock runs ahead of the
            // server's from asking again and again.
            const opened = remaining <= 0 && Date.now() - shownAt >= 1000;
            if (opened || Date.now() >= recheckAt) {
                clearInterval(timer);
                section.hidden = true;
                resolve(true);
            }
        };
        const timer = setInterval(tick, COUNTDOWN_INTERVAL_MS);
        tick();
    });
}

/** @param {string|undefined} code */
export function isSlotWindowCode(code) {
    return code !== undefined && WINDOW_CODES.has(code);
}

// ---------------------------------------------------------------------------
// Slot list

/**
 * Loads and shows the room's upcoming slots below the pre-join form.
 * @param {{roomId: string, token: string, role: string,
 *     nameInput: HTMLInputElement}} options
 */
export async function initBooking(options) {
    state.roomId = options.roomId;
    state.token = options.token;
    state.role = options.role;
    state.nameInput = options.nameInput;
    bindForm();
    await refreshSlots();
    setInterval(() => {
        if (!byId('booking').hidden && document.visibilityState === 'visible') {
            refreshSlots();
        }
    }, REFRESH_INTERVAL_MS);
}

async function refreshSlots() {
    const result = await request('GET', '/slots');
    if (!result.ok) {
        showNotice(errorText(result), 'error');
        return;
    }
    state.slots = Array.isArray(result.body?.slots) ? result.body.slots : [];
    state.earlyMinutes = Number(result.body?.early_minutes ?? 10);
    render();
}

function render() {
    const isHost = state.role === 'host';
    byId('booking').hidden = false;
    byId('slot-form').hidden = !isHost;
    byId('slot-empty').hidden = state.slots.length > 0;
    const mine = ownBookings();
    const items = state.slots.map((slot) => renderSlot(slot,
        mine.find((b) => b.slotId === slot.id) ?? null, isHost));
    byId('slot-list').replaceChildren(...items);
}

/**
 * @param {SlotInfo} slot
 * @param {OwnBooking|null} booking
 * @param {boolean} isHost
 */
function renderSlot(slot, booking, isHost) {
    const item = element('li', 'slot');
    item.dataset.slot = slot.id;
    item.dataset.cancelled = String(slot.cancelled);
    item.append(element('h3', 'slot-title', slot.title || 'Coworking session'));
    item.append(element('p', 'slot-time',
        `${formatStart(slot.starts_at)} – ${formatClock(slot.ends_at)}`));
    item.append(element('p', 'slot-plan', describePlan(slot.plan)));
    const full = slot.booked >= slot.capacity;
    const ended = Date.parse(slot.ends_at) <= Date.now();
    item.dataset.ended = String(ended);
    let places = `${slot.booked} of ${slot.capacity} places booked`;
    if (slot.cancelled) {
        places = 'Cancelled by the host';
    } else if (ended) {
        places = `Ended. ${places}`;
    } else if (full) {
        places += ' (full)';
    }
    item.append(element('p', 'slot-places', places));

    const actions = element('div', 'slot-actions');
    if (slot.cancelled || ended) {
        // Nothing to book, edit or cancel any more.
    } else if (booking) {
        item.append(element('p', 'slot-booked', `Booked as ${booking.name}`));
        actions.append(button('Add to calendar', 'slot-calendar',
            () => downloadCalendar(slot)));
        actions.append(button('Cancel my booking', 'slot-unbook',
            () => cancelOwnBooking(booking)));
    } else {
        const book = button('Book a place', 'slot-book', () => bookSlot(slot));
        book.disabled = full;
        actions.append(book);
    }
    if (isHost && !slot.cancelled && !ended) {
        actions.append(button('Edit', 'slot-edit', () => startEditing(slot)));
        actions.append(button('Invite link for this session', 'slot-invite',
            () => createSlotInvite(slot)));
        actions.append(button('Cancel session', 'slot-cancel danger',
            () => cancelSlot(slot)));
    }
    item.append(actions);

    const link = state.slotLinks.get(slot.id);
    if (isHost && link) {
        item.append(element('code', 'slot-link', link));
    }
    if (isHost && slot.bookings && slot.bookings.length > 0) {
        const list = element('ul', 'slot-bookings');
        for (const entry of slot.bookings) {
            const row = element('li', 'slot-booking',
                `${entry.name}: ${attendanceLabel(entry.attendance)}`);
            row.dataset.attendance = entry.attendance ?? '';
            row.dataset.booking = entry.id;
            if (!entry.cancelled && !ended && !slot.cancelled) {
                row.append(' ', button('Remove', 'slot-remove-booking',
                    () => removeBooking(entry)));
            }
            list.append(row);
        }
        item.append(list);
    }
    return item;
}

/** @param {string|undefined} attendance */
function attendanceLabel(attendance) {
    const labels = /** @type {Record<string, string>} */ ({
        attended: 'came', no_show: 'did not come', cancelled: 'cancelled',
        pending: 'booked',
    });
    return labels[attendance ?? ''] ?? 'booked';
}

/**
 * @param {string} label
 * @param {string} className
 * @param {() => Promise<void>} action
 */
function button(label, className, action) {
    const node = /** @type {HTMLButtonElement} */ (element('button', className, label));
    node.type = 'button';
    node.addEventListener('click', async () => {
        node.disabled = true;
        try {
            await action();
        } finally {
            node.disabled = false;
        }
    });
    return node;
}

/**
 * @param {string} text
 * @param {'error'|'info'} kind
 */
function showNotice(text, kind) {
    const notice = byId('booking-notice');
    notice.textContent = text;
    notice.dataset.kind = kind;
    notice.hidden = false;
}

// ---------------------------------------------------------------------------
// Guest actions

/** @param {SlotInfo} slot */
async function bookSlot(slot) {
    const name = state.nameInput?.value.trim() ?? '';
    if (!name) {
        state.nameInput?.setAttribute('aria-invalid', 'true');
        state.nameInput?.focus();
        showNotice('Enter your name above, then book.', 'error');
        return;
    }
    const path = `/slots/${encodeURIComponent(slot.id)}/bookings`;
    const result = await request('POST', path, {name});
    if (!result.ok) {
        showNotice(errorText(result), 'error');
        await refreshSlots();
        return;
    }
    const booking = result.body.booking;
    const mine = ownBookings();
    mine.push({
        id: String(booking.id), secret: String(result.body.secret), slotId: slot.id,
        name: String(booking.name), startsAt: slot.starts_at, endsAt: slot.ends_at,
    });
    saveOwnBookings(mine);
    showNotice(`Booked a place as ${booking.name}. Add the session to your calendar`
        + ' so you do not miss it.', 'info');
    await refreshSlots();
}

/** @param {OwnBooking} booking */
async function cancelOwnBooking(booking) {
    const result = await request('POST',
        `/bookings/${encodeURIComponent(booking.id)}/cancel`, {secret: booking.secret});
    // A booking that the server no longer has (404) is dropped here too.
    if (result.ok || result.status === 404) {
        saveOwnBookings(ownBookings().filter((b) => b.id !== booking.id));
        showNotice('Your booking is cancelled.', 'info');
    } else {
        showNotice(errorText(result), 'error');
    }
    await refreshSlots();
}

/** @param {SlotInfo} slot */
async function downloadCalendar(slot) {
    const url = `/api/rooms/${encodeURIComponent(state.roomId)}/slots/`
        + `${encodeURIComponent(slot.id)}/calendar.ics`;
    let response;
    try {
        response = await fetch(url, {
            headers: {Authorization: `Bearer ${state.token}`}, cache: 'no-store',
        });
    } catch (error) {
        console.warn('Calendar download failed:', error);
        showNotice('The server could not be reached. Try again.', 'error');
        return;
    }
    if (!response.ok) {
        const body = await response.json().catch(() => null);
        showNotice(body?.error?.message ?? 'The calendar file could not be made.',
            'error');
        return;
    }
    const blob = await response.blob();
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = `${slot.id}.ics`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// ---------------------------------------------------------------------------
// Host actions

function bindForm() {
    const form = /** @type {HTMLFormElement} */ (byId('slot-form'));
    form.addEventListener('submit', (event) => {
        event.preventDefault();
        saveSlot();
    });
    byId('slot-edit-stop').addEventListener('click', stopEditing);
    const start = /** @type {HTMLInputElement} */ (byId('slot-start'));
    if (!start.value) {
        const next = new Date(Date.now() + 3600000);
        next.setMinutes(0, 0, 0);
        start.value = localInputValue(next);
    }
}

/** @param {string} id @returns {number} the input's number, NaN when empty */
function numberField(id) {
    const value = /** @type {HTMLInputElement} */ (byId(id)).value.trim();
    return value === '' ? NaN : Number(value);
}

/** @returns {object|string} the slot fields, or an error message */
function readForm() {
    const startValue = /** @type {HTMLInputElement} */ (byId('slot-start')).value;
    const start = new Date(startValue);
    if (!startValue || Number.isNaN(start.getTime())) {
        return 'Enter the start date and time.';
    }
    const minutes = {
        length: numberField('slot-length'),
        focus: numberField('slot-focus'),
        break: numberField('slot-break'),
        longBreak: numberField('slot-long-break'),
    };
    for (const [name, value] of Object.entries(minutes)) {
        if (!Number.isFinite(value) || value < 0) {
            return `Enter the ${name === 'longBreak' ? 'long break' : name}`
                + ' in minutes, as a number of 0 or more.';
        }
    }
    const rounds = numberField('slot-rounds');
    const capacity = numberField('slot-capacity');
    /** @type {Record<string, any>} */
    const fields = {
        starts_at: start.toISOString(),
        length: Math.round(minutes.length * 60),
        plan: {
            focus: Math.round(minutes.focus * 60),
            break: Math.round(minutes.break * 60),
            long_break: Math.round(minutes.longBreak * 60),
            rounds_before_long: Number.isFinite(rounds) ? rounds : 0,
        },
        title: /** @type {HTMLInputElement} */ (byId('slot-title')).value,
    };
    if (Number.isFinite(capacity)) {
        fields.capacity = capacity;
    }
    return fields;
}

async function saveSlot() {
    const fields = readForm();
    if (typeof fields === 'string') {
        showNotice(fields, 'error');
        return;
    }
    const save = /** @type {HTMLButtonElement} */ (byId('slot-save'));
    save.disabled = true;
    const result = state.editing
        ? await request('PATCH', `/slots/${encodeURIComponent(state.editing)}`, fields)
        : await request('POST', '/slots', fields);
    save.disabled = false;
    if (!result.ok) {
        showNotice(errorText(result), 'error');
        return;
    }
    showNotice(state.editing ? 'Session updated.' : 'Session scheduled.', 'info');
    stopEditing();
    await refreshSlots();
}

/** @param {SlotInfo} slot */
async function startEditing(slot) {
    state.editing = slot.id;
    const set = (/** @type {string} */ id, /** @type {string} */ value) => {
        /** @type {HTMLInputElement} */ (byId(id)).value = value;
    };
    set('slot-start', localInputValue(new Date(slot.starts_at)));
    set('slot-length', String(slot.length / 60));
    set('slot-focus', String(slot.plan.focus / 60));
    set('slot-break', String(slot.plan.break / 60));
    set('slot-long-break', String(slot.plan.long_break / 60));
    set('slot-rounds', String(slot.plan.rounds_before_long));
    set('slot-capacity', String(slot.capacity));
    set('slot-title', slot.title);
    byId('slot-form-title').textContent = 'Edit the session';
    byId('slot-save').textContent = 'Save changes';
    byId('slot-edit-stop').hidden = false;
    byId('slot-form').scrollIntoView({block: 'nearest'});
}

async function stopEditing() {
    state.editing = null;
    byId('slot-form-title').textContent = 'Schedule a session';
    byId('slot-save').textContent = 'Schedule';
    byId('slot-edit-stop').hidden = true;
}

/** @param {SlotInfo} slot */
async function cancelSlot(slot) {
    if (!window.confirm('Cancel this session? Its bookings and invite links'
        + ' for it stop counting.')) {
        return;
    }
    const result = await request('DELETE', `/slots/${encodeURIComponent(slot.id)}`);
    showNotice(result.ok ? 'Session cancelled.' : errorText(result),
        result.ok ? 'info' : 'error');
    await refreshSlots();
}

/** @param {BookingInfo} booking */
async function removeBooking(booking) {
    if (!window.confirm(`Remove the booking of ${booking.name}?`)) {
        return;
    }
    const result = await request('DELETE',
        `/bookings/${encodeURIComponent(booking.id)}`);
    if (result.ok) {
        showNotice(`Removed the booking of ${booking.name}.`, 'info');
    } else {
        showNotice(errorText(result), 'error');
    }
    await refreshSlots();
}

/** @param {SlotInfo} slot */
async function createSlotInvite(slot) {
    const path = `/slots/${encodeURIComponent(slot.id)}/invites`;
    const result = await request('POST', path, {});
    if (!result.ok) {
        showNotice(errorText(result), 'error');
        return;
    }
    state.slotLinks.set(slot.id, String(result.body.invite.url));
    showNotice('This link admits guests from shortly before the session until its'
        + ' end. Copy it from the session below.', 'info');
    render();
}

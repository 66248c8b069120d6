/**
 * Shows a participant's presence in their tile: a status badge, the goal
 * for the session and the profile card. All text goes in with
 * textContent, and the profile link only as an http or https `href`.
 */

import {STATUS_LABELS, safeHref} from './presence.js';

/**
 * @typedef {{role: string, work: string, open_to_chat: boolean,
 *     link: string}} Profile
 * @typedef {{status?: string, goal?: string, profile?: Profile|null}} Presence
 */

/**
 * Returns the tile's child with the class, created with `create` if missing.
 * @param {HTMLElement} tile
 * @param {string} className
 * @param {() => HTMLElement} create
 * @returns {HTMLElement}
 */
function part(tile, className, create) {
    let element = tile.querySelector(`.${className}`);
    if (!element) {
        element = create();
        element.classList.add(className);
        const info = tile.querySelector('.tile-info') ?? tile;
        info.append(element);
    }
    return /** @type {HTMLElement} */ (element);
}

/**
 * @param {HTMLElement} tile
 * @param {Presence} state
 */
export function renderPresence(tile, state) {
    if (!tile.querySelector('.tile-info')) {
        const info = document.createElement('div');
        info.className = 'tile-info';
        tile.append(info);
    }
    const status = typeof state.status === 'string' && state.status in STATUS_LABELS
        ? state.status : 'available';
    tile.dataset.status = status;
    const badge = part(tile, 'tile-status', () => document.createElement('span'));
    badge.textContent = STATUS_LABELS[/** @type {keyof STATUS_LABELS} */ (status)];

    const goal = typeof state.goal === 'string' ? state.goal : '';
    const goalElement = part(tile, 'tile-goal', () => document.createElement('p'));
    goalElement.textContent = goal;
    goalElement.title = goal;
    goalElement.hidden = goal === '';

    const card = part(tile, 'tile-profile', () => document.createElement('details'));
    renderProfile(/** @type {HTMLDetailsElement} */ (card), state.profile ?? null);
}

/**
 * @param {HTMLDetailsElement} card
 * @param {Profile|null} profile
 */
function renderProfile(card, profile) {
    card.hidden = !profile || typeof profile !== 'object';
    if (card.hidden || !profile) {
        card.replaceChildren();
        return;
    }
    const summary = document.createElement('summary');
    summary.textContent = 'Profile';
    const rows = [];
    if (profile.role) {
        rows.push(row('Role', String(profile.role)));
    }
    if (profile.work) {
        rows.push(row('Works on', String(profile.work)));
    }
    rows.push(row('Open to chat', profile.open_to_chat ? 'Yes' : 'No'));
    const href = safeHref(profile.link);
    if (href) {
        const link = document.createElement('a');
        link.href = href;
        link.textContent = String(profile.link);
        link.target = '_blank';
        link.rel = 'noopener noreferrer';
        const entry = row('Link', '');
        entry.querySelector('dd')?.append(link);
        rows.push(entry);
    }
    const list = document.createElement('dl');
    list.append(...rows);
    card.replaceChildren(summary, list);
}

/**
 * @param {string} term
 * @param {string} value
 * @returns {HTMLElement} a div with a dt and a dd
 */
function row(term, value) {
    const entry = document.createElement('div');
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = value;
    entry.append(dt, dd);
    return entry;
}

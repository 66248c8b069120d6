/**
 * The chat panel: the message list, the input, and links made safe.
 * Every text goes in with textContent. Only http and https addresses in a
 * message become links, with rel="noopener noreferrer".
 */

import {safeHref} from './presence.js';

export const CHAT_MAX_LENGTH = 1000;
/** Messages kept on the page; the server keeps as many for late joiners. */
const SHOWN_MESSAGES = 100;
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"]+/gi;
/** Trailing punctuation that usually ends the sentence, not the address. */
const TRAILING_PUNCTUATION = /[.,;:!?)\]}'"]+$/;

/**
 * @typedef {{type: 'chat', id: string, from: string, name: string,
 *     text: string, at: number}} ChatMessage
 */

export class ChatPanel {
    /**
     * @param {{log: HTMLElement, form: HTMLFormElement,
     *     input: HTMLTextAreaElement}} elements
     */
    constructor(elements) {
        this.log = elements.log;
        this.form = elements.form;
        this.input = elements.input;
        /** Own participant id, to mark own messages. */
        this.ownId = '';
        /** @type {Set<string>} */
        this.seen = new Set();
        /** @type {(text: string) => void} */
        this.onsend = () => {};
        this.input.maxLength = CHAT_MAX_LENGTH;
        this.form.addEventListener('submit', (event) => {
            event.preventDefault();
            this.#submit();
        });
        this.input.addEventListener('keydown', (event) => {
            // Enter sends, Shift+Enter starts a new line.
            if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
                event.preventDefault();
                this.#submit();
            }
        });
    }

    #submit() {
        const text = this.input.value.trim();
        if (!text) {
            return;
        }
        this.onsend(text);
        this.input.value = '';
    }

    /**
     * Replaces the list with a history, as sent when the data channel opens.
     * @param {unknown} messages
     */
    replace(messages) {
        this.clear();
        if (Array.isArray(messages)) {
            for (const message of messages) {
                this.add(message);
            }
        }
    }

    clear() {
        this.seen.clear();
        this.log.replaceChildren();
    }

    /** @param {any} message */
    add(message) {
        if (!message || typeof message.id !== 'string'
                || typeof message.text !== 'string' || this.seen.has(message.id)) {
            return;
        }
        this.seen.add(message.id);
        const item = document.createElement('li');
        item.className = 'chat-message';
        item.dataset.id = message.id;
        if (message.from === this.ownId) {
            item.dataset.own = 'true';
        }
        const header = document.createElement('div');
        header.className = 'chat-meta';
        const name = document.createElement('span');
        name.className = 'chat-name';
        name.textContent = String(message.name ?? '');
        const time = document.createElement('time');
        const at = new Date(Number(message.at));
        if (!Number.isNaN(at.getTime())) {
            time.dateTime = at.toISOString();
            time.textContent = at.toLocaleTimeString([], {
                hour: '2-digit',
                minute: '2-digit',
            });
        }
        header.append(name, time);
        const body = document.createElement('p');
        body.className = 'chat-text';
        appendWithLinks(body, message.text);
        item.append(header, body);

        const atBottom = this.log.scrollHeight - this.log.scrollTop
            - this.log.clientHeight < 40;
        this.log.append(item);
        while (this.log.childElementCount > SHOWN_MESSAGES) {
            const first = /** @type {HTMLElement} */ (this.log.firstElementChild);
            this.seen.delete(first.dataset.id ?? '');
            first.remove();
        }
        if (atBottom) {
            this.log.scrollTop = this.log.scrollHeight;
        }
    }
}

/**
 * Appends text to an element, making http and https addresses links.
 * @param {HTMLElement} element
 * @param {string} text
 */
export function appendWithLinks(element, text) {
    let last = 0;
    for (const match of text.matchAll(URL_PATTERN)) {
        const start = match.index ?? 0;
        const url = match[0].replace(TRAILING_PUNCTUATION, '');
        const href = safeHref(url);
        if (!href) {
            continue;
        }
        element.append(text.slice(last, start));
        const link = document.createElement('a');
        link.href = href;
        link.textContent = url;
        link.target = '_blank';
        link.rel = 'noopener noreferrer';
        element.append(link);
        last = start + url.length;
    }
    element.append(text.slice(last));
}

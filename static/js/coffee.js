/**
 * Virtual coffee: the opt-in toggle, the current group with its prompt, and
 * which tiles to show. The server forms the groups and changes what it
 * forwards; this page hides the tiles of people it no longer receives.
 */

/**
 * @typedef {{id: string, members: string[], prompt: string}} CoffeeGroup
 * @typedef {{type: 'coffee', opted_in: string[], in_groups: string[],
 *     group: CoffeeGroup|null}} CoffeeMessage
 */

/**
 * @param {unknown} value
 * @returns {value is string[]}
 */
function isIdList(value) {
    return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/**
 * Checks the fields this page reads from a `coffee` message.
 * @param {any} message
 * @returns {message is CoffeeMessage}
 */
export function isCoffeeMessage(message) {
    if (message?.type !== 'coffee' || !isIdList(message.opted_in)
            || !isIdList(message.in_groups)) {
        return false;
    }
    const group = message.group;
    return group === null || (typeof group?.id === 'string'
        && isIdList(group.members) && typeof group.prompt === 'string');
}

/** The coffee toggle and group panel of the room page. */
export class CoffeePanel {
    /**
     * @param {HTMLElement} container
     * @param {{send: (join: boolean) => void,
     *     nameOf: (id: string) => string,
     *     ownId: () => string|null,
     *     notify: (text: string) => void}} hooks
     */
    constructor(container, hooks) {
        this.hooks = hooks;
        /** Whether this person wants to join coffee groups at breaks. */
        this.wanted = false;
        /** @type {Set<string>} */
        this.optedIn = new Set();
        /** @type {Set<string>} */
        this.inGroups = new Set();
        /** @type {CoffeeGroup|null} */
        this.group = null;

        this.toggle = document.createElement('button');
        this.toggle.type = 'button';
        this.toggle.id = 'coffee-toggle';
        this.toggle.className = 'coffee-toggle';
        this.toggle.addEventListener('click', () => this.setWanted(!this.wanted));
        this.panel = document.createElement('div');
        this.panel.className = 'coffee-panel';
        this.panel.id = 'coffee-panel';
        this.panel.hidden = true;
        this.title = document.createElement('p');
        this.title.className = 'coffee-title';
        this.prompt = document.createElement('p');
        this.prompt.className = 'coffee-prompt';
        this.panel.append(this.title, this.prompt);
        container.append(this.toggle, this.panel);
        this.#render();
    }

    /** @param {boolean} wanted */
    setWanted(wanted) {
        this.wanted = wanted;
        this.hooks.send(wanted);
        this.#render();
    }

    /**
     * Takes a `coffee` message from the server.
     * @param {any} message
     * @returns {boolean} whether the message was valid
     */
    update(message) {
        if (!isCoffeeMessage(message)) {
            console.warn('Ignored an invalid coffee message.');
            return false;
        }
        const ownId = this.hooks.ownId();
        const previous = this.group;
        this.optedIn = new Set(message.opted_in);
        this.inGroups = new Set(message.in_groups);
        this.group = message.group;
        if (ownId && this.wanted && !this.optedIn.has(ownId)) {
            // A new session after a reconnect starts opted out on the server.
            this.hooks.send(true);
        }
        if (this.group && this.group.id !== previous?.id) {
            this.hooks.notify(`Break: you are in a virtual coffee with ${this.#partnerNames()}.`);
        } else if (!this.group && previous) {
            this.hooks.notify('Back in the main room.');
        }
        this.#render();
        return true;
    }

    /** Forgets groups and opt-ins of the last session, as on leaving. */
    reset() {
        this.optedIn.clear();
        this.inGroups.clear();
        this.group = null;
        this.#render();
    }

    /**
     * Tells whether this page receives a participant's media: the members
     * of its own group, or everyone outside groups while in the main room.
     * @param {string} id
     * @returns {boolean}
     */
    isVisible(id) {
        if (this.group) {
            return this.group.members.includes(id);
        }
        return !this.inGroups.has(id);
    }

    /**
     * Marks opted-in tiles and hides the tiles of people out of reach.
     * @param {Map<string, HTMLElement>} tiles by participant id
     */
    applyToTiles(tiles) {
        for (const [id, tile] of tiles) {
            tile.dataset.coffee = String(this.optedIn.has(id));
            if (tile.dataset.local === 'true') {
                continue;
            }
            tile.hidden = !this.isVisible(id);
        }
    }

    #partnerNames() {
        const ownId = this.hooks.ownId();
        const names = (this.group?.members ?? [])
            .filter((id) => id !== ownId)
            .map((id) => this.hooks.nameOf(id));
        return names.join(', ');
    }

    #render() {
        this.toggle.textContent = this.wanted
            ? 'Leave virtual coffee' : 'Join virtual coffee at breaks';
        this.toggle.setAttribute('aria-pressed', String(this.wanted));
        this.panel.hidden = !this.group;
        if (this.group) {
            this.title.textContent = `Virtual coffee with ${this.#partnerNames()}`;
            this.prompt.textContent = this.group.prompt;
        }
    }
}

/**
 * Host controls on the page: mute or remove a participant from their tile,
 * and lock or unlock the room. The server checks that the sender is a host,
 * so hiding the controls from guests is only a convenience.
 */

const REMOVE_CONFIRM_MS = 4000;

export class HostControls {
    /**
     * @param {{lockButton: HTMLButtonElement, lockNotice: HTMLElement}} elements
     */
    constructor(elements) {
        this.lockButton = elements.lockButton;
        this.lockNotice = elements.lockNotice;
        this.isHost = false;
        this.locked = false;
        /** Sends a host message on the data channel. */
        /** @type {(message: object) => void} */
        this.send = () => {};
        this.lockButton.addEventListener('click', () => {
            this.send({type: 'host', action: this.locked ? 'unlock' : 'lock'});
        });
        this.render();
    }

    /** @param {boolean} isHost */
    setHost(isHost) {
        this.isHost = isHost;
        this.render();
    }

    /** @param {boolean} locked */
    setLocked(locked) {
        this.locked = locked;
        this.render();
    }

    render() {
        this.lockButton.hidden = !this.isHost;
        this.lockButton.textContent = this.locked ? 'Unlock room' : 'Lock room';
        this.lockButton.setAttribute('aria-pressed', String(this.locked));
        this.lockNotice.hidden = !this.locked;
        this.lockNotice.textContent = this.isHost
            ? 'The room is locked: nobody new can join, except hosts.'
            : 'The host locked the room: nobody new can join.';
    }

    /**
     * Adds Mute and Remove buttons to a remote participant's tile, once.
     * @param {HTMLElement|undefined} tile
     * @param {string} participantId
     * @param {string} role the participant's role; hosts cannot be removed
     */
    decorateTile(tile, participantId, role) {
        if (!this.isHost || !tile || tile.querySelector('.tile-host')) {
            return;
        }
        const bar = document.createElement('div');
        bar.className = 'tile-host';
        const mute = document.createElement('button');
        mute.type = 'button';
        mute.className = 'tile-mute';
        mute.textContent = 'Mute';
        mute.addEventListener('click', () => {
            this.send({type: 'host', action: 'mute', target: participantId});
        });
        bar.append(mute);
        if (role !== 'host') {
            bar.append(this.#removeButton(participantId));
        }
        tile.append(bar);
    }

    /**
     * A button that asks for a second click before it removes someone.
     * @param {string} participantId
     * @returns {HTMLButtonElement}
     */
    #removeButton(participantId) {
        const remove = document.createElement('button');
        remove.type = 'button';
        remove.className = 'tile-remove danger';
        remove.textContent = 'Remove';
        /** @type {number|undefined} */
        let timer;
        remove.addEventListener('click', () => {
            if (remove.dataset.confirm !== 'true') {
                remove.dataset.confirm = 'true';
                remove.textContent = 'Click again to remove';
                timer = setTimeout(() => {
                    remove.dataset.confirm = 'false';
                    remove.textContent = 'Remove';
                }, REMOVE_CONFIRM_MS);
                return;
            }
            clearTimeout(timer);
            remove.disabled = true;
            this.send({type: 'host', action: 'remove', target: participantId});
        });
        return remove;
    }
}

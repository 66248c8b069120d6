/**
 * Connects the session clock and virtual coffee to the room page: routes
 * their data-channel messages, sends host actions and coffee choices, mutes
 * the microphone when focus starts and switches the video send profile.
 */

import {SessionClock} from './clock.js';
import {CoffeePanel} from './coffee.js';
import {applySendProfile} from './focus.js';

/**
 * @typedef {import('./protocol.js').RoomConnection} RoomConnection
 * @typedef {import('./tiles.js').TileGrid} TileGrid
 * @typedef {{grid: TileGrid,
 *     muteForFocus: () => void,
 *     videoTrack: () => MediaStreamTrack|null}} PageHooks
 */

export class Coworking {
    /**
     * @param {HTMLElement} container element for the clock and coffee bar
     * @param {PageHooks} page
     */
    constructor(container, page) {
        this.page = page;
        /** @type {RoomConnection|null} */
        this.connection = null;
        /** Whether the video sender has the focus profile; for the tests too. */
        this.focusProfile = false;
        this.clock = new SessionClock(container, (action) => {
            this.connection?.sendData({type: 'host', action});
        });
        this.coffee = new CoffeePanel(container, {
            send: (join) => this.connection?.sendData({type: 'coffee', join}),
            nameOf: (id) => this.connection?.participants.get(id)?.name ?? 'someone',
            ownId: () => this.connection?.participantId ?? null,
            notify: (text) => this.clock.showNotice(text),
        });
        this.clock.onphase = (message, fresh) => this.#onPhase(message.phase, fresh);
    }

    /**
     * Starts taking this connection's clock and coffee messages.
     * @param {RoomConnection} connection
     * @param {string} role 'host' shows the clock controls
     */
    attach(connection, role) {
        this.connection = connection;
        this.clock.setHost(role === 'host');
        connection.handleData('clock', (message) => {
            if (connection === this.connection) {
                this.clock.update(message);
            }
        });
        connection.handleData('coffee', (message) => {
            if (connection === this.connection) {
                this.coffee.update(message);
                this.refreshTiles();
            }
        });
    }

    /** Stops the display, as on leaving the room. */
    detach() {
        this.connection = null;
        this.clock.stop();
        this.coffee.reset();
        this.focusProfile = false;
    }

    /** @returns {boolean} whether a focus phase is on */
    inFocus() {
        return this.clock.inFocus();
    }

    /** Re-applies coffee visibility after tiles were added. */
    refreshTiles() {
        this.coffee.applyToTiles(this.page.grid.tiles);
    }

    /** Re-applies the send profile, e.g. after the camera changed. */
    async refreshSendProfile() {
        const sender = this.connection?.sender('video') ?? null;
        const focus = this.clock.inFocus();
        if (await applySendProfile(sender, this.page.videoTrack(), focus)) {
            this.focusProfile = focus;
        }
    }

    /**
     * @param {string} phase
     * @param {boolean} fresh
     */
    #onPhase(phase, fresh) {
        if (fresh && phase === 'focus') {
            this.page.muteForFocus();
        }
        // A reconnect brings a new sender, so every message applies it again.
        this.refreshSendProfile();
    }
}

/**
 * The "focus" send profile: during focus each page sends a smaller, slower
 * and cheaper video, since people only need to see that the others are
 * there. The break restores the camera's own quality.
 */

/** About 640x360 at 15 frames per second and 300 kbit/s. */
export const FOCUS_PROFILE = {width: 640, height: 360, frameRate: 15, bitrate: 300_000};

/**
 * Returns the factor that fits a width x height picture into the focus
 * profile's size without enlarging it.
 * @param {number} width
 * @param {number} height
 * @returns {number} 1 or more
 */
export function focusScale(width, height) {
    if (!(width > 0 && height > 0)) {
        return 1;
    }
    return Math.max(1, width / FOCUS_PROFILE.width, height / FOCUS_PROFILE.height);
}

/**
 * Sets the video sender's encoding to the focus profile, or restores it.
 * Encodings exist only after negotiation; before it this does nothing.
 * @param {RTCRtpSender|null} sender
 * @param {MediaStreamTrack|null} track the camera track being sent
 * @param {boolean} focus
 * @returns {Promise<boolean>} whether the parameters were applied
 */
export async function applySendProfile(sender, track, focus) {
    if (!sender) {
        return false;
    }
    const parameters = sender.getParameters();
    const encoding = parameters.encodings?.[0];
    if (!encoding) {
        return false;
    }
    if (focus) {
        const settings = track?.getSettings() ?? {};
        encoding.maxBitrate = FOCUS_PROFILE.bitrate;
        encoding.maxFramerate = FOCUS_PROFILE.frameRate;
        encoding.scaleResolutionDownBy = focusScale(
            settings.width ?? 0, settings.height ?? 0);
    } else {
        delete encoding.maxBitrate;
        delete encoding.maxFramerate;
        encoding.scaleResolutionDownBy = 1;
    }
    try {
        await sender.setParameters(parameters);
        return true;
    } catch (error) {
        console.warn('Could not change the video send parameters:', error);
        return false;
    }
}

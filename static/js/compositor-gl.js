/**
 * WebGL compositing for the background effect: one canvas, a texture each for
 * the camera frame, the model's mask and the picture, and a fragment shader
 * that mixes the camera over the background with the mask as alpha.
 *
 * Blur runs as a separable Gaussian in two passes into framebuffers at a
 * quarter of the camera's size: a horizontal pass from the camera texture,
 * then a vertical one. The 2D canvas path in segmentation.js stays the
 * fallback when WebGL is missing or its context is lost.
 */

/** Downscale factor of the blur framebuffers relative to the camera. */
const BLUR_DOWNSCALE = 4;
/** Gaussian taps on each side of the centre, spread over three sigma. */
const BLUR_TAPS = 6;
/** Background colour while there is no picture or no camera frame. */
const EMPTY_GREY = 0x33 / 255;

const VERTEX_SHADER = `
attribute vec2 position;
varying vec2 uv;
void main() {
    uv = position * 0.5 + 0.5;
    gl_Position = vec4(position, 0.0, 1.0);
}`;

const BLUR_SHADER = `
precision mediump float;
uniform sampler2D source;
/** One sigma along the pass direction, in texture coordinates. */
uniform vec2 sigmaStep;
varying vec2 uv;
void main() {
    vec4 sum = vec4(0.0);
    float weights = 0.0;
    for (int i = -${BLUR_TAPS}; i <= ${BLUR_TAPS}; i++) {
        float x = float(i) * 3.0 / ${BLUR_TAPS}.0;
        float weight = exp(-0.5 * x * x);
        sum += weight * texture2D(source, uv + x * sigmaStep);
        weights += weight;
    }
    gl_FragColor = sum / weights;
}`;

const COMPOSITE_SHADER = `
precision mediump float;
uniform sampler2D camera;
uniform sampler2D mask;
uniform sampler2D background;
uniform bool hasMask;
uniform bool hasBackground;
/** Maps output coordinates to the background texture (cover cropping). */
uniform vec4 backgroundRect;
/** One feathering radius, in mask texture coordinates. */
uniform vec2 edgeStep;
varying vec2 uv;

// The model's mask carries the person's confidence in alpha, like the 2D path's
// 'source-in' compositing expects. NOTE: the tests' cameras show no person, so
// they only check an all-zero mask.
float maskAt(vec2 point) {
    return texture2D(mask, point).a;
}

void main() {
    vec3 backColour = vec3(${EMPTY_GREY.toFixed(4)});
    if (hasBackground) {
        vec2 point = backgroundRect.xy + uv * backgroundRect.zw;
        backColour = texture2D(background, point).rgb;
    }
    float alpha = 0.0;
    if (hasMask) {
        alpha = 0.4 * maskAt(uv)
            + 0.15 * (maskAt(uv + vec2(edgeStep.x, 0.0))
                + maskAt(uv - vec2(edgeStep.x, 0.0))
                + maskAt(uv + vec2(0.0, edgeStep.y))
                + maskAt(uv - vec2(0.0, edgeStep.y)));
    }
    vec3 person = texture2D(camera, uv).rgb;
    gl_FragColor = vec4(mix(backColour, person, alpha), 1.0);
}`;

/**
 * @typedef {{video: HTMLVideoElement, ready: boolean, mask: ImageBitmap|null,
 *     blurRadius: number|null, image: ImageBitmap|null, edgeRadius: number}}
 *     FrameInput
 * `blurRadius` is the Gaussian sigma in output pixels for a blurred
 * background, or null for the picture (`image`, or grey without one).
 */

export class GlCompositor {
    /**
     * Returns a compositor drawing on `canvas`, or null when the browser
     * offers no WebGL context for it.
     * @param {HTMLCanvasElement} canvas
     * @returns {GlCompositor|null}
     */
    static create(canvas) {
        const gl = canvas.getContext('webgl', {
            alpha: false, antialias: false, depth: false, premultipliedAlpha: false,
        });
        if (!gl) {
            return null;
        }
        try {
            return new GlCompositor(canvas, gl);
        } catch (error) {
            console.warn('WebGL compositing failed to set up:', error);
            return null;
        }
    }

    /**
     * @param {HTMLCanvasElement} canvas
     * @param {WebGLRenderingContext} gl
     */
    constructor(canvas, gl) {
        this.canvas = canvas;
        this.gl = gl;
        /** Set when the browser lost the context, so the caller falls back. */
        this.lost = false;
        canvas.addEventListener('webglcontextlost', () => {
            this.lost = true;
        });
        this.blurProgram = linkProgram(gl, BLUR_SHADER);
        this.compositeProgram = linkProgram(gl, COMPOSITE_SHADER);
        const quad = gl.createBuffer();
        gl.bindBuffer(gl.ARRAY_BUFFER, quad);
        gl.bufferData(gl.ARRAY_BUFFER,
            new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
        this.camera = createTexture(gl);
        this.mask = createTexture(gl);
        this.picture = createTexture(gl);
        /** @type {ImageBitmap|null} the image last uploaded to `picture` */
        this.pictureSource = null;
        /** @type {ImageBitmap|null} the mask last uploaded to `mask` */
        this.maskSource = null;
        this.blurTargets = [createTarget(gl), createTarget(gl)];
        this.blurWidth = 0;
        this.blurHeight = 0;
        gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, true);
    }

    /**
     * Draws one output frame at the canvas's size. Without a camera frame or
     * a mask the whole frame is background.
     * @param {FrameInput} input
     */
    draw(input) {
        const gl = this.gl;
        const {width, height} = this.canvas;
        const hasMask = input.ready && input.mask !== null;
        if (input.ready) {
            upload(gl, this.camera, input.video);
        }
        if (hasMask && input.mask !== this.maskSource) {
            upload(gl, this.mask, /** @type {ImageBitmap} */ (input.mask));
            this.maskSource = input.mask;
        }
        const {background, rect} = this.#background(input, width, height);

        gl.bindFramebuffer(gl.FRAMEBUFFER, null);
        gl.viewport(0, 0, width, height);
        const program = this.compositeProgram;
        gl.useProgram(program);
        bindTexture(gl, program, 'camera', 0, this.camera);
        bindTexture(gl, program, 'mask', 1, this.mask);
        bindTexture(gl, program, 'background', 2, background ?? this.picture);
        gl.uniform1i(gl.getUniformLocation(program, 'hasMask'), hasMask ? 1 : 0);
        gl.uniform1i(gl.getUniformLocation(program, 'hasBackground'),
            background ? 1 : 0);
        gl.uniform4fv(gl.getUniformLocation(program, 'backgroundRect'), rect);
        gl.uniform2f(gl.getUniformLocation(program, 'edgeStep'),
            input.edgeRadius / width, input.edgeRadius / height);
        drawQuad(gl, program);
    }

    /**
     * Prepares the background texture and the part of it to show, or returns
     * a null texture for plain grey.
     * @param {FrameInput} input
     * @param {number} width
     * @param {number} height
     * @returns {{background: WebGLTexture|null, rect: number[]}}
     */
    #background(input, width, height) {
        if (input.blurRadius !== null) {
            const background = input.ready
                ? this.#blur(input.blurRadius, width, height) : null;
            return {background, rect: [0, 0, 1, 1]};
        }
        if (!input.image) {
            return {background: null, rect: [0, 0, 1, 1]};
        }
        if (input.image !== this.pictureSource) {
            upload(this.gl, this.picture, input.image);
            this.pictureSource = input.image;
        }
        return {background: this.picture, rect: coverRect(input.image, width, height)};
    }

    /**
     * Blurs the current camera texture into the second blur target.
     * @param {number} sigma in output pixels
     * @param {number} width
     * @param {number} height
     * @returns {WebGLTexture}
     */
    #blur(sigma, width, height) {
        const gl = this.gl;
        const blurWidth = Math.max(1, Math.round(width / BLUR_DOWNSCALE));
        const blurHeight = Math.max(1, Math.round(height / BLUR_DOWNSCALE));
        if (blurWidth !== this.blurWidth || blurHeight !== this.blurHeight) {
            for (const target of this.blurTargets) {
                resizeTarget(gl, target, blurWidth, blurHeight);
            }
            this.blurWidth = blurWidth;
            this.blurHeight = blurHeight;
        }
        const [across, down] = this.blurTargets;
        const program = this.blurProgram;
        gl.useProgram(program);
        gl.viewport(0, 0, blurWidth, blurHeight);
        const sigmaStep = gl.getUniformLocation(program, 'sigmaStep');
        // Horizontal pass from the full-size camera, so the downscale is
        // filtered across; the vertical pass then reads the small target.
        gl.bindFramebuffer(gl.FRAMEBUFFER, across.framebuffer);
        bindTexture(gl, program, 'source', 0, this.camera);
        gl.uniform2f(sigmaStep, sigma / width, 0);
        drawQuad(gl, program);
        gl.bindFramebuffer(gl.FRAMEBUFFER, down.framebuffer);
        bindTexture(gl, program, 'source', 0, across.texture);
        gl.uniform2f(sigmaStep, 0, sigma / height);
        drawQuad(gl, program);
        return down.texture;
    }
}

/**
 * Returns [x, y, width, height] of the part of `image` that covers the output
 * like CSS `object-fit: cover`, in texture coordinates.
 * @param {ImageBitmap} image
 * @param {number} width
 * @param {number} height
 * @returns {number[]}
 */
function coverRect(image, width, height) {
    const scale = Math.max(width / image.width, height / image.height);
    const shownWidth = width / scale / image.width;
    const shownHeight = height / scale / image.height;
    return [(1 - shownWidth) / 2, (1 - shownHeight) / 2, shownWidth, shownHeight];
}

/**
 * @param {WebGLRenderingContext} gl
 * @param {string} fragmentSource
 * @returns {WebGLProgram}
 */
function linkProgram(gl, fragmentSource) {
    const program = /** @type {WebGLProgram} */ (gl.createProgram());
    for (const [type, source] of [
        [gl.VERTEX_SHADER, VERTEX_SHADER], [gl.FRAGMENT_SHADER, fragmentSource],
    ]) {
        const shader = /** @type {WebGLShader} */ (gl.createShader(Number(type)));
        gl.shaderSource(shader, String(source));
        gl.compileShader(shader);
        if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
            throw new Error(`shader compile failed: ${gl.getShaderInfoLog(shader)}`);
        }
        gl.attachShader(program, shader);
    }
    gl.bindAttribLocation(program, 0, 'position');
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
        throw new Error(`shader link failed: ${gl.getProgramInfoLog(program)}`);
    }
    return program;
}

/**
 * @param {WebGLRenderingContext} gl
 * @returns {WebGLTexture}
 */
function createTexture(gl) {
    const texture = /** @type {WebGLTexture} */ (gl.createTexture());
    gl.bindTexture(gl.TEXTURE_2D, texture);
    // Camera and picture sizes are not powers of two, which WebGL 1 only
    // samples with clamping and without mipmaps.
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, 1, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE,
        new Uint8Array(4));
    return texture;
}

/**
 * @param {WebGLRenderingContext} gl
 * @returns {{texture: WebGLTexture, framebuffer: WebGLFramebuffer}}
 */
function createTarget(gl) {
    return {
        texture: createTexture(gl),
        framebuffer: /** @type {WebGLFramebuffer} */ (gl.createFramebuffer()),
    };
}

/**
 * @param {WebGLRenderingContext} gl
 * @param {{texture: WebGLTexture, framebuffer: WebGLFramebuffer}} target
 * @param {number} width
 * @param {number} height
 */
function resizeTarget(gl, target, width, height) {
    gl.bindTexture(gl.TEXTURE_2D, target.texture);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, width, height, 0, gl.RGBA,
        gl.UNSIGNED_BYTE, null);
    gl.bindFramebuffer(gl.FRAMEBUFFER, target.framebuffer);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D,
        target.texture, 0);
}

/**
 * @param {WebGLRenderingContext} gl
 * @param {WebGLTexture} texture
 * @param {TexImageSource} source
 */
function upload(gl, texture, source) {
    gl.bindTexture(gl.TEXTURE_2D, texture);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, source);
}

/**
 * @param {WebGLRenderingContext} gl
 * @param {WebGLProgram} program
 * @param {string} name
 * @param {number} unit
 * @param {WebGLTexture} texture
 */
function bindTexture(gl, program, name, unit, texture) {
    gl.activeTexture(gl.TEXTURE0 + unit);
    gl.bindTexture(gl.TEXTURE_2D, texture);
    gl.uniform1i(gl.getUniformLocation(program, name), unit);
}

/**
 * @param {WebGLRenderingContext} gl
 * @param {WebGLProgram} program
 */
function drawQuad(gl, program) {
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
    gl.useProgram(program);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
}

# The coworking server: aiohttp front, aiortc workers, static client.
# Build: docker build -t coworking .   Run it with docker-compose.yml.

# CI builds from a Debian image made locally (scripts/build-image), because
# it cannot pull from a container registry.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# Lets scripts/build-image remove this stage's image after a build.
LABEL org.coworking.stage=build
WORKDIR /build
COPY pyproject.toml ./
# Install only the runtime dependencies listed in pyproject.toml into a venv
# that the final stage copies; the project's own code runs from /app.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COWORKING_HOST=0.0.0.0 \
    COWORKING_PORT=8080 \
    COWORKING_DB=/data/coworking.sqlite3
RUN useradd --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin coworking \
    && mkdir /data \
    && chown coworking:coworking /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The client is plain JavaScript with no build step: the files below are all
# the page needs, served by the app itself.
COPY server ./server
COPY sfu ./sfu
COPY static ./static
# The person segmentation model for virtual backgrounds, installed by npm
# outside the build (scripts/build-image runs npm ci first).
COPY vendor/node_modules ./vendor/node_modules
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "server", "health"]
ENTRYPOINT ["python", "-m", "server"]
CMD ["serve"]

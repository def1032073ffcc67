# Dockerfile -- one image for every pixflow role: pixflow-consumer (the default command),
# pixflow-ingest, the pixflow admin CLI and its console pixflow-web, with the transform plugins.
#
#   docker build -t pixflow .
#   docker run --rm pixflow pixflow-consumer --help
#   docker run --rm -v "$PWD/catalogs:/catalogs" pixflow pixflow-ingest --watch /catalogs
#
# tests/deploy/test_image.py repeats the build stage on the CI machine (same Debian packages, same
# CMake commands, same build context after .dockerignore) and checks that the runtime stage's
# packages provide every shared library the installed programs and plugins need. It reads the
# `apt-get install` list of each stage and the build stage's `cmake` RUN: keep them in that form.

# ---- build: compilers, -dev packages, CMake ----------------------------------------------------
FROM debian:bookworm-slim AS build

# Versions are not pinned: bookworm's point releases replace them, and the suite is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential \
        cmake \
        pkg-config \
        libbson-dev \
        libcurl4-openssl-dev \
        libdeflate-dev \
        libevent-dev \
        libhiredis-dev \
        libjpeg62-turbo-dev \
        libmongoc-dev \
        libssl-dev \
        libstb-dev \
        libwebp-dev \
        zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src

# The project's own build type (RelWithDebInfo: -O2 -g, what the tests run), stripped at install.
# The prefix is compiled in as the default plugin folder, so it must match the runtime stage.
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIXFLOW_TESTS=OFF \
        -DCMAKE_INSTALL_PREFIX=/opt/pixflow \
    && cmake --build /build --parallel "$(nproc)" \
    && cmake --install /build --strip

# ---- runtime: shared libraries only ------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# curl is the HEALTHCHECK's client (its library is needed anyway); the rest are the shared
# libraries the programs and plugins link, and the CA store for HTTPS downloads.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates \
        curl \
        libbson-1.0-0 \
        libcurl4 \
        libdeflate0 \
        libevent-2.1-7 \
        libevent-openssl-2.1-7 \
        libevent-pthreads-2.1-7 \
        libhiredis0.14 \
        libjpeg62-turbo \
        libmongoc-1.0-0 \
        libssl3 \
        libwebp7 \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric id, so Kubernetes' runAsNonRoot can check it and volumes can be chowned to it.
RUN groupadd --system --gid 10001 pixflow \
    && useradd --system --uid 10001 --gid pixflow --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin pixflow

COPY --from=build /opt/pixflow /opt/pixflow

# PIXFLOW_HTTP: the consumer's /healthz, /readyz, /metrics and /images listener (read by
# pixflow-consumer --http; the other programs ignore it). Loopback by default, so the image
# exposes nothing by itself: the HEALTHCHECK reaches it, other hosts do not. Deployments that
# want it reachable set PIXFLOW_HTTP=0.0.0.0:8080 together with PIXFLOW_HTTP_TOKEN (compose and
# the chart do).
ENV PATH=/opt/pixflow/bin:$PATH \
    PIXFLOW_PLUGIN_PATH=/opt/pixflow/lib/pixflow/plugins \
    PIXFLOW_HTTP=127.0.0.1:8080

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080

# For the consumer role. Roles without the listener (ingest, the admin CLI) turn it off: compose
# sets `healthcheck: disable: true` on them, and Kubernetes ignores HEALTHCHECK.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "--fail", "--silent", "--show-error", "--max-time", "2", "--output", "/dev/null", "http://127.0.0.1:8080/healthz"]

CMD ["pixflow-consumer"]

# syntax=docker/dockerfile:1
# mixserve CPU image: Debian 12, LibTorch 1.13 (CPU) from Debian's packages.
#   docker build -t mixserve:latest .
#   docker run --rm -p 8500:8500 -p 9500:9500 \
#     -v "$PWD/admin-token:/run/secrets/mixserve-admin-token:ro" mixserve:latest
#   (the administration token; the server does not start without it, docs/deploy.md)
#   deploy/container_check.sh builds the image and checks a running container.
# Build arguments:
#   MODELS  which model repository the image carries (deploy/docker/stage-models.sh):
#           auto (default: the shipped models/, else small models trained from data/multi30k
#           during the build, a few minutes), shipped, train, none (mount one at run time).
# GPU hosts: deploy/Dockerfile.cuda. docs/deploy.md has every command.

ARG DEBIAN_IMAGE=debian:bookworm

# ---- build: compilers and -dev packages (the same list as scripts/bootstrap.sh) ----------
FROM ${DEBIAN_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/bootstrap.sh /tmp/bootstrap.sh
RUN /tmp/bootstrap.sh && rm -rf /var/lib/apt/lists/*

# Only what the build and stage-models.sh read: edits to docs, tests or deploy files do not
# invalidate the compile layer.
WORKDIR /src
COPY CMakeLists.txt /src/
COPY cmake/ /src/cmake/
COPY base/ /src/base/
COPY proto/ /src/proto/
COPY config/ /src/config/
COPY text/ /src/text/
COPY model/ /src/model/
COPY engine/ /src/engine/
COPY offline/ /src/offline/
COPY server/ /src/server/
COPY clients/ /src/clients/
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DMIXSERVE_BUILD_TESTS=OFF -DMIXSERVE_BUILD_BENCH=OFF \
 && cmake --build /build -j "$(nproc)" --target mixserve-server mixserve-cli

# Binaries and the project's own shared libraries (model, generated protos, the SentencePiece
# shim, which the server loads from <bin>/../lib) go to /stage/{bin,lib}.
RUN mkdir -p /stage/bin /stage/lib \
 && cp /build/server/mixserve-server /build/clients/mixserve-cli /stage/bin/ \
 && find /build -name 'libmixserve*.so*' \( -type f -o -type l \) -exec cp -a {} /stage/lib/ \; \
 && strip --strip-unneeded /stage/bin/* /stage/lib/*.so

COPY scripts/ /src/scripts/
COPY data/ /src/data/
COPY models/ /src/models/
COPY deploy/docker/ /src/deploy/docker/
ARG MODELS=auto
RUN MODELS=${MODELS} deploy/docker/stage-models.sh /stage/models /build

# ---- deps: Debian's runtime packages, reduced to the shared libraries the binaries load ----
# libtorch1.13 depends on OpenCV, FFmpeg, GDAL, Qt and more (an 848 MB layer); the server
# loads a fraction of that. deploy/docker/collect-libs.sh copies the ldd closure of the
# binaries, the project's libraries (including the dlopen'ed SentencePiece shim) and tini.
FROM ${DEBIAN_IMAGE}-slim AS deps
ENV DEBIAN_FRONTEND=noninteractive
RUN ls /usr/lib/x86_64-linux-gnu > /tmp/base-libs.txt \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      libtorch1.13 libopenblas0-openmp \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 \
      libsentencepiece0 libicu72 \
      libprometheus-cpp-core1.0 \
      zlib1g tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /stage/bin/ /usr/local/bin/
COPY --from=build /stage/lib/ /usr/local/lib/
COPY deploy/docker/collect-libs.sh /tmp/collect-libs.sh
RUN ldconfig \
 && /tmp/collect-libs.sh /deps/lib /tmp/base-libs.txt \
      /usr/local/bin/mixserve-server /usr/local/bin/mixserve-cli /usr/local/lib/libmixserve*.so \
      /usr/bin/tini \
 && mkdir -p /deps/doc \
 && { dpkg -S $(ls /deps/lib) 2>/dev/null || true; } | cut -d: -f1 | tr ',' '\n' | tr -d ' ' \
      | sort -u > /tmp/pkgs.txt \
 && while read -r pkg; do \
      if [ -f "/usr/share/doc/$pkg/copyright" ]; then \
        mkdir -p "/deps/doc/$pkg" && cp "/usr/share/doc/$pkg/copyright" "/deps/doc/$pkg/"; \
      fi; \
    done < /tmp/pkgs.txt

# ---- runtime: the base image, the collected libraries, the binaries and the models --------
FROM ${DEBIAN_IMAGE}-slim AS runtime
COPY --from=deps /deps/lib/ /usr/lib/x86_64-linux-gnu/
COPY --from=deps /deps/doc/ /usr/share/doc/
COPY --from=deps /usr/bin/tini /usr/bin/tini
COPY --from=build /stage/bin/ /usr/local/bin/
COPY --from=build /stage/lib/ /usr/local/lib/
# Fail the build when any library the binaries (or the dlopen'ed shim) need is missing.
RUN ldconfig \
 && ldd /usr/local/bin/mixserve-server /usr/local/bin/mixserve-cli /usr/local/lib/libmixserve*.so \
      /usr/bin/tini > /tmp/ldd.txt \
 && if grep "not found" /tmp/ldd.txt; then exit 1; fi \
 && rm /tmp/ldd.txt \
 && if ! ldd /usr/lib/x86_64-linux-gnu/libblas.so.3 | grep -q libopenblas; then \
      echo "libblas.so.3 is not OpenBLAS (CPU decoding would be 5x slower)" >&2; exit 1; \
    fi

RUN groupadd --system --gid 10001 mixserve \
 && useradd --system --uid 10001 --gid 10001 --home-dir /opt/mixserve --no-create-home \
      --shell /usr/sbin/nologin mixserve \
 && mkdir -p /opt/mixserve /etc/mixserve
COPY --from=build --chown=10001:10001 /stage/models/ /opt/mixserve/models/
COPY deploy/server-container.pbtxt /etc/mixserve/server.pbtxt

USER 10001:10001
WORKDIR /opt/mixserve
# gRPC (TranslationService, ModelService, grpc.health.v1, reflection) and /metrics.
EXPOSE 8500 9500

# grpc.health.v1 Check of the whole server: SERVING until a drain starts (SIGTERM).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["mixserve-cli", "--target=127.0.0.1:8500", "--deadline-ms=3000", "health"]

# tini forwards SIGTERM to the server, which drains (drain_grace_seconds) and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/mixserve-server"]
CMD ["--config=/etc/mixserve/server.pbtxt"]

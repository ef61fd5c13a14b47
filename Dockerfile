# laserd with the CUDA backend, on a CUDA runtime base image.
#
#   docker build -t laserd .
#   docker run --gpus all -p 50051:50051 -p 9090:9090 \
#     -v /srv/models:/models:ro -v laserd-state:/var/lib/laserd laserd
#
# Stage 1 builds laserd and laserctl with nvcc on the CUDA devel image; stage 2 holds
# the two binaries, the shared libraries they load (found by ldd, see
# deploy/docker/runtime-packages.sh) and the health check. Ubuntu 24.04 is the CUDA
# image whose packages match scripts/setup.sh's Debian 12 set (same grpc 1.51,
# protobuf 3.21, abseil 20220623; CMake >= 3.25). See docs/deploy.md.
ARG CUDA_VERSION=13.0.2
ARG UBUNTU=ubuntu24.04

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The build subset of scripts/setup.sh's packages (tests/integration/test_deploy_docker.py
# checks that each one is there too).
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake ninja-build pkg-config g++ \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev \
      libopenblas-dev liblapacke-dev \
      nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev libpcre2-dev libicu-dev \
      libsqlite3-dev libcpp-httplib-dev libssl-dev libyaml-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# GPU architectures to compile for (Ampere, Hopper by default).
ARG CUDA_ARCHITECTURES="80;90"
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLASERD_WITH_CUDA=ON \
      -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES}" \
      -DLASERD_BUILD_TESTS=OFF -DLASERD_BUILD_BENCH=OFF | tee /build-configure.log \
 && grep -q 'laserd: CUDA backend ON' /build-configure.log \
 && cmake --build /build --target laserd laserctl \
 && mkdir -p /out/bin \
 && cp /build/server/laserd /build/client/laserctl /out/bin/ \
 && deploy/docker/runtime-packages.sh /out/bin/laserd /out/bin/laserctl > /out/runtime-packages.txt

FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=build /out/runtime-packages.txt /usr/share/laserd/runtime-packages.txt
# The libraries laserd loads (the builder's list: same distribution snapshot, so no
# version pins), and for the health check Python with the gRPC health stubs in a venv.
# hadolint ignore=DL3008
RUN apt-get update \
 && xargs -a /usr/share/laserd/runtime-packages.txt \
      env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/laserd/venv \
 && /opt/laserd/venv/bin/pip install --no-cache-dir \
      grpcio==1.85.1 grpcio-health-checking==1.85.1 protobuf==7.36.2 \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/laserd --create-home \
      --shell /usr/sbin/nologin laserd \
 && mkdir -p /models /data \
 && chown laserd:laserd /var/lib/laserd
COPY --from=build /out/bin/laserd /out/bin/laserctl /usr/local/bin/
COPY deploy/docker/laserd-healthcheck /opt/laserd/bin/laserd-healthcheck
# Every library resolves, and the binaries start.
RUN ! ldd /usr/local/bin/laserd /usr/local/bin/laserctl | grep 'not found' \
 && laserd --help > /dev/null && laserctl --help > /dev/null
ENV PATH=/opt/laserd/bin:$PATH \
    LASERD_HEALTH_TARGET=127.0.0.1:50051
USER 10001:10001
WORKDIR /var/lib/laserd
VOLUME ["/var/lib/laserd"]
EXPOSE 50051 9090
# grpc.health.v1 turns SERVING once the model is resident: loading a large model takes
# minutes, hence the start period.
HEALTHCHECK --interval=30s --timeout=10s --start-period=600s --retries=3 \
  CMD ["/opt/laserd/venv/bin/python3", "/opt/laserd/bin/laserd-healthcheck"]
ENTRYPOINT ["laserd"]
CMD ["serve", "--model", "/models/model.gguf", "--state-dir", "/var/lib/laserd", \
     "--listen", "0.0.0.0:50051", "--http-listen", "0.0.0.0:9090", "--device", "auto"]

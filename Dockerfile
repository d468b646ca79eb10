# powhost as a serverless GPU worker (README: "Deploying the worker on the serverless platform").
# Not built on this project's machines (they reach no registry): what it runs is tested by
# host/tests/worker/, the image itself is not.

# Build stage: the release binary, the built-in plugins compiled to WebAssembly and embedded.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-wasip2 \
 && cargo build --release -p powhost \
 && cp target/release/powhost /powhost

# Runtime: NVIDIA's CUDA 13 runtime image carries the libraries the CUDA backend loads at run
# time (libcublas and libnvrtc, matching cudarc's cuda-13000); the driver (libcuda) is mounted
# by the container runtime from the host. TLS uses rustls with built-in roots: no OpenSSL.
FROM nvidia/cuda:13.0.0-runtime-ubuntu24.04
COPY --from=build /powhost /usr/local/bin/powhost
ENV LOG_LEVEL=info \
    POWHOST_CACHE_DIR=/tmp/powhost-cache
# The platform sets RUNPOD_WEBHOOK_GET_JOB, RUNPOD_WEBHOOK_POST_OUTPUT, … for its workers.
# The worker runs the device self-test before its first job and refuses a faulty device.
CMD ["powhost", "worker", "--backend", "auto"]

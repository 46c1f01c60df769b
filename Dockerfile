# memserve server image (CPU). Build: docker build -t memserve .   Run: docker compose up
# The server listens on every interface inside the container, so it refuses to start without authentication:
# pass MEMSERVE_API_KEY (or mount a keys file as MEMSERVE_API_KEYS_FILE, or an mTLS client CA); add
# MEMSERVE_TLS_CERT_FILE/MEMSERVE_TLS_KEY_FILE so keys do not cross the network in clear. docs/SECURITY.md.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    OPENBLAS_NUM_THREADS=1

WORKDIR /app
# CPU-only torch first, from PyTorch's CPU wheel index, so the CUDA wheels are never pulled.
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install "${TORCH_SPEC}" --index-url "${TORCH_INDEX}"

COPY clients/python /app/clients/python
COPY pyproject.toml README.md /app/
COPY memserve /app/memserve
RUN pip install /app/clients/python "/app[cpu]"

RUN useradd --create-home memserve && mkdir /data && chown memserve /data
USER memserve
VOLUME ["/data"]
EXPOSE 50051

# Health needs no key. With TLS, set MEMSERVE_TLS_CA (and MEMSERVE_TLS_CERT/KEY for mTLS) for this client too.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD memserve health --server "${MEMSERVE_HEALTH_SERVER:-127.0.0.1:50051}" --timeout 3

ENTRYPOINT ["memserve", "serve", "--host", "0.0.0.0", "--port", "50051", "--data-dir", "/data"]

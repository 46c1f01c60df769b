# memserve server image (CPU). Build: docker build -t memserve .   Run: docker compose up
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
EXPOSE 50051 9464

HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import grpc,sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; \
s=g.HealthStub(grpc.insecure_channel('127.0.0.1:50051')).Check(h.HealthCheckRequest(), timeout=3).status; \
sys.exit(0 if s == h.HealthCheckResponse.SERVING else 1)"

ENTRYPOINT ["memserve", "serve", "--host", "0.0.0.0", "--port", "50051", "--data-dir", "/data"]

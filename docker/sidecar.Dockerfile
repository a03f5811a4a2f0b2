# The GPU process: torch + diffusers behind gRPC. The torch wheel from PyPI
# carries its CUDA libraries, so a slim Python base is enough; the host needs
# the NVIDIA driver and the NVIDIA container toolkit.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PIP_NO_CACHE_DIR=1
COPY sidecar/requirements.lock sidecar/requirements.lock
RUN pip install -r sidecar/requirements.lock
COPY sidecar sidecar
RUN pip install --no-deps ./sidecar
EXPOSE 50051
CMD ["python", "-m", "modelhost", "serve", "--listen", "0.0.0.0:50051"]

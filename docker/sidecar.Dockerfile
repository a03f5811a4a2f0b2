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
# The bundled config folders completed with their tokenizer files at build time, so
# that the running container needs no writable cache for them.
ENV MODELHOST_CACHE_DIR=/opt/modelhost-cache
RUN python -c "from modelhost.configs import FOLDERS, config_folder; [config_folder(f) for f in FOLDERS]"
EXPOSE 50051
CMD ["python", "-m", "modelhost", "serve", "--listen", "0.0.0.0:50051"]

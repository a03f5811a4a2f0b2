# The GPU process: torch + diffusers behind gRPC. The torch wheel from PyPI
# carries its CUDA libraries, so a slim Python base is enough; the host needs
# the NVIDIA driver and the NVIDIA container toolkit.
# The base is a build argument only so that ./runner.sh images can build on a stand-in where no registry is reachable.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
WORKDIR /app
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The run-time dependencies (pyproject's [project] dependencies) at the lock's versions; the lock also pins the
# test and lint tools, which stay out. The wheels are kept in a BuildKit cache mount, a wheelhouse rather than pip's
# HTTP cache (which stores nothing behind a proxy that strips caching headers): a rebuild downloads only wheels it
# does not have (pip download, finding them there, skips them) instead of the ~3 GB of torch and its CUDA libraries,
# and the image does not keep them.
COPY sidecar/requirements.lock sidecar/pyproject.toml /tmp/deps/
RUN --mount=type=cache,target=/var/cache/wheelhouse,sharing=locked \
  python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/deps/pyproject.toml', 'rb'))['project']['dependencies']))" \
    > /tmp/deps/runtime.txt \
  && pip download --no-cache-dir --dest /var/cache/wheelhouse --find-links /var/cache/wheelhouse \
    -c /tmp/deps/requirements.lock -r /tmp/deps/runtime.txt \
  && pip install --no-cache-dir --no-index --find-links /var/cache/wheelhouse \
    -c /tmp/deps/requirements.lock -r /tmp/deps/runtime.txt \
  && rm -rf /tmp/deps
# The package itself, from a bind mount of the source: the image gets the installed package, not the tests.
RUN --mount=type=bind,source=sidecar,target=/tmp/sidecar,rw \
  pip install --no-deps --no-cache-dir /tmp/sidecar
# The bundled config folders completed with their tokenizer files at build time, so
# that the running container needs no writable cache for them.
ENV MODELHOST_CACHE_DIR=/opt/modelhost-cache
RUN python -c "from modelhost.configs import FOLDERS, config_folder; [config_folder(f) for f in FOLDERS]"
# An unprivileged user (docker-compose.yml names the same uid): the code and caches above stay root's.
RUN useradd --system --uid 10001 --user-group --no-create-home modelhost
USER modelhost
EXPOSE 50051
CMD ["python", "-m", "modelhost", "serve", "--listen", "0.0.0.0:50051"]

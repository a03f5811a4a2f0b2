# Stand-in for the official python:3.11-slim, made by `./runner.sh images` only where no image registry can be
# reached: Debian bookworm's own Python 3.11, laid out as the official image is for docker/model-host.Dockerfile
# (`python` and `pip` on PATH, pip free to install for the whole system).
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
  && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3.11 python3-pip \
  && rm -rf /var/lib/apt/lists/* \
  && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
  && ln -s /usr/bin/python3.11 /usr/local/bin/python \
  && ln -s /usr/bin/pip3 /usr/local/bin/pip
ENV LANG=C.UTF-8
CMD ["python"]

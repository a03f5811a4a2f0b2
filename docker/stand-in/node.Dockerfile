# Stand-in for the official node:24-slim, made by `./runner.sh images` only where no image registry can be reached:
# Debian bookworm with the Node the project runs on (the npm registry's node-linux-* build plus its npm, in the
# build context's node/ folder) in /usr/local, and the official image's unprivileged user node (uid 1000).
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
COPY node/ /usr/local/
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
# Node carries its own CA list; the stand-in's Debian base trusts this machine's (its TLS-inspecting proxy's too).
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]

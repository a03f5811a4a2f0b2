# The base is a build argument only so that ./runner.sh images can build on a stand-in where no registry is reachable.
ARG NODE_IMAGE=node:24-slim
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json nest-cli.json tsconfig*.json ./
COPY apps/gateway/package.json apps/gateway/package.json
# npm's cache is a BuildKit cache mount: a rebuild after a lock change downloads only what changed.
RUN --mount=type=cache,target=/root/.npm,sharing=locked npm ci --no-audit --no-fund
COPY proto proto
COPY apps apps
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/proto proto
COPY package.json ./
EXPOSE 4200
# node (uid 1000) comes with the base image: never serve as root. The files above stay root's, read-only to it.
USER node
CMD ["node", "dist/apps/gateway/main.js"]

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json nest-cli.json tsconfig*.json ./
COPY apps/gateway/package.json apps/gateway/package.json
RUN npm ci --no-audit --no-fund
COPY proto proto
COPY apps apps
RUN npm run build && npm prune --omit=dev

FROM node:24-slim
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

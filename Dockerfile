# A production relayer worker: the compiled relayer (dist/) and its runtime dependencies only (no Hardhat, no
# TypeScript, no Solidity sources), run as a non-root user, with a health check on /readyz.
#
#   docker build -t agentgpt-relayer .            # or: podman build -t agentgpt-relayer .
#   docker compose up                              # Redis (AOF) + the relayer: see compose.yaml and the README
#
# NODE_IMAGE: any Debian-based Node.js 22.13+ image with npm and a `node` user (uid 1000), e.g. the official
# node:22-bookworm-slim. test/e2e/container.test.ts builds this file on a local image of that shape.
ARG NODE_IMAGE=node:22-bookworm-slim

# ---- build: every dependency, the contracts compiled (pinned npm solc: nothing downloaded), TypeScript -> dist/,
#      packed exactly as `npm pack` ships it ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
ENV HARDHAT_DISABLE_TELEMETRY_PROMPT=true
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# The contracts first, in a layer of their own: it is rebuilt only when they (or the compiler settings) change.
COPY hardhat.config.ts tsconfig.json ./
COPY test/helpers/exit-guard.ts test/helpers/
COPY contracts contracts
RUN npx hardhat build --no-tests --quiet
COPY . .
# prepack runs `npm run build`: hardhat build (up to date: nothing compiled again), then tsc to dist/.
RUN mkdir -p /tmp/pack /app \
 && npm pack --pack-destination /tmp/pack \
 && tar -xzf /tmp/pack/*.tgz -C /app --strip-components=1 \
 && cp package-lock.json /app/

# ---- runtime: the packed package and `npm ci --omit=dev` ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    AGENTGPT_HEALTH_PORT=8787
WORKDIR /app
COPY --from=build /app /app
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && test ! -e node_modules/hardhat \
 && mkdir -p /data \
 && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8787
# /readyz: Redis answers and no stage of the process reports a problem. AGENTGPT_HEALTH_PORT: the config's
# server.port (default 8787).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.AGENTGPT_HEALTH_PORT}/readyz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/agentgpt.mjs"]
CMD ["relayer", "start", "--config", "/config/relayer.yaml"]

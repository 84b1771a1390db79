# A development chain for the compose stack: anvil from the project's pinned npm toolchain.
FROM node:20.18.1-bookworm-slim
WORKDIR /opt/contracts
COPY contracts/package.json contracts/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error \
    && ln -s "$(ls -d /opt/contracts/node_modules/@foundry-rs/anvil-linux-*/bin/anvil | head -n 1)" /usr/local/bin/anvil \
    && useradd --system --uid 10002 anvil
USER anvil
EXPOSE 8545
HEALTHCHECK --interval=5s --timeout=3s --retries=20 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8545"]
ENTRYPOINT ["anvil"]
# --prune-history: without it per-block cost grows with height. Chain id 31337.
CMD ["--host", "0.0.0.0", "--port", "8545", "--hardfork", "cancun", "--prune-history", "64", "--block-time", "2"]

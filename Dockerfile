# One image for every service of the distributed mode; docker-compose.yml picks the command.

# Forms are built (and checked by ODK Validate, which needs Java) at image build time,
# so the running services need no JVM.
FROM python:3.11-slim AS forms
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
RUN pip install --no-cache-dir .
COPY odk-forms ./odk-forms
RUN python -m services.intake.forms odk-forms build/forms

# The dashboard's chart library, from the npm registry (package-lock.json), as `make static` does.
FROM node:20-slim AS static
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error && mkdir -p build/static \
    && cp node_modules/chart.js/dist/chart.umd.js node_modules/chart.js/LICENSE.md build/static/

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY schemas ./schemas
RUN pip install --no-cache-dir -e . && useradd --system --uid 10001 app && mkdir -p /data/state/central && chown -R app /data
COPY --from=forms /app/build/forms ./build/forms
COPY --from=static /app/build/static ./build/static
USER app
ENV HOST=0.0.0.0 FORMS_DIR=/app/build/forms STATE_DIR=/data/state FAUST_DATA_DIR=/data/faust
CMD ["python", "-m", "services.embedded"]

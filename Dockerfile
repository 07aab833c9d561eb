# One image for the API, the worker and the migrate job (the command differs).
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --system --uid 10001 --home /app onramp

COPY pyproject.toml README.md ./
COPY onramp ./onramp
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY worker ./worker
COPY sandbox ./sandbox
RUN pip install .

USER onramp
EXPOSE 8000
# The API by default; docker-compose runs `onramp worker` and `onramp migrate` too.
CMD ["onramp", "api", "--host", "0.0.0.0", "--port", "8000"]

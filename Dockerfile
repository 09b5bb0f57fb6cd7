# One image for the project's services; docker-compose.yml picks the command per service.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY samples ./samples
COPY execution_domain ./execution_domain
COPY wire ./wire
COPY kafka_client ./kafka_client
COPY observability ./observability
COPY local_kafka ./local_kafka
COPY local_registry ./local_registry
COPY processor ./processor
COPY gateway ./gateway
COPY mock_oms ./mock_oms
COPY status_consumer ./status_consumer
COPY demo ./demo
RUN mkdir -p /var/lib/processor && chown nobody /var/lib/processor
RUN pip install --no-cache-dir -e .
USER nobody

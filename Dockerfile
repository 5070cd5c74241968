# One image for every part: `goldenhour api|streams|dispatcher|migrate|topics`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY goldenhour goldenhour
RUN pip install --no-cache-dir . \
    && groupadd --system --gid 10001 goldenhour \
    && useradd --system --uid 10001 --gid 10001 --no-create-home goldenhour
# Numeric, so Kubernetes can check runAsNonRoot against the image without a passwd lookup.
USER 10001:10001
# 8000: the API; 9100: /healthz, /readyz and /metrics of every part (GOLDENHOUR_HEALTH_PORT).
# No HEALTHCHECK here: the migrate and topics jobs run from this image and serve no port, so each
# long-running service declares its own (docker-compose.yml, infra/k8s).
EXPOSE 8000 9100
ENTRYPOINT ["goldenhour"]

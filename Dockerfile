# One image for every part: `goldenhour api|streams|dispatcher`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY goldenhour goldenhour
RUN pip install --no-cache-dir . && useradd --system --uid 10001 goldenhour
USER goldenhour
ENTRYPOINT ["goldenhour"]

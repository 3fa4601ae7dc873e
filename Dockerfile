FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY models ./models
COPY streams ./streams
RUN pip install --no-cache-dir .
ENV PERSO_WEB_HOST=0.0.0.0
CMD ["perso", "worker"]

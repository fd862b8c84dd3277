# The model fetcher: a small, non-root image running `modeldeploy-fetch`.
# Only the fetcher's own dependency (boto3) is installed; no TensorFlow, no kopf.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir --prefix=/install --no-deps . \
 && pip install --no-cache-dir --prefix=/install "boto3==1.44.5"

FROM python:3.11-slim
COPY --from=build /install /usr/local
USER 65532:65532
ENTRYPOINT ["modeldeploy-fetch"]

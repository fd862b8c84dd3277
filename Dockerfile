# The operator image: Python, kopf and the operator, with tensorflow-serving-api's
# config messages but without TensorFlow (the operator never imports it). The package's
# own dependencies are what the operator imports; the plugin's (kubernetes, rich) and the
# tests' (grpcio) are extras it leaves out.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir --prefix=/install . \
 && pip install --no-cache-dir --prefix=/install --no-deps "tensorflow-serving-api>=2.16"

FROM python:3.11-slim
COPY --from=build /install /usr/local
# kopf names itself after the user (getpass.getuser()): a uid without a passwd entry made
# it exit at start. The entry covers the manifest's 65532; USER covers any other uid a
# cluster assigns (OpenShift's, say), since getuser() reads it first.
RUN useradd --uid 65532 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin modeldeploy
ENV USER=modeldeploy
USER 65532:65532
# `kopf run` with the operator's handlers, without importing the kubernetes package
# (modeldeploy/control/__main__.py).
ENTRYPOINT ["modeldeploy-operator"]
CMD ["--standalone", "--all-namespaces", "--liveness=http://0.0.0.0:8080/healthz"]

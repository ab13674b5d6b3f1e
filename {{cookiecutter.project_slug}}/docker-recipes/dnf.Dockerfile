# The image SageMaker runs as `docker run IMAGE train` and `docker run IMAGE serve`.
# BASE_IMAGE is the base OS you chose; substitute a mirror or a digest at build time with
# `make build BASE_IMAGE=...` (or `docker build --build-arg BASE_IMAGE=...`).
ARG BASE_IMAGE=public.ecr.aws/amazonlinux/amazonlinux:2023
ARG PYTHON=python3.11

# --- build stage: the Python environment, installed from requirements.lock (hash-checked) ----
FROM ${BASE_IMAGE} AS build
ARG PYTHON
# Build-time only, for networks behind a proxy or with a private index; none of these reach the
# final image: PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, and EXTRA_CA_CERTS (PEM text of extra CAs).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG EXTRA_CA_CERTS
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN dnf install -y --setopt=install_weak_deps=False ${PYTHON} ${PYTHON}-pip binutils \
 && dnf clean all \
 && rm -rf /var/cache/dnf
RUN ${PYTHON} -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
# Extra CAs are added to the bundle pip already trusts (PIP_CERT, else pip's own certifi).
RUN if [ -n "${EXTRA_CA_CERTS}" ]; then \
        trusted="${PIP_CERT:-$(/opt/venv/bin/python -c 'from pip._vendor import certifi; print(certifi.where())')}"; \
        { cat "${trusted}"; printf '%s\n' "${EXTRA_CA_CERTS}"; } > /tmp/build-ca.pem; \
        export PIP_CERT=/tmp/build-ca.pem; \
    fi \
 && /opt/venv/bin/pip install --require-hashes --only-binary=:all: --no-compile -r /tmp/requirements.lock \
 && /opt/venv/bin/pip uninstall -y pip setuptools \
 && rm -f /tmp/build-ca.pem
# A smaller environment that runs the same code (docker/slim-python-env.sh says what it drops).
# KEEP_SOURCES=1 keeps the libraries' .py files, for code that reads its own source.
ARG KEEP_SOURCES=0
COPY docker/slim-python-env.sh /tmp/slim-python-env.sh
RUN sh /tmp/slim-python-env.sh /opt/venv/bin/python
COPY src/ /opt/program/
RUN /opt/venv/bin/python -m compileall -q /opt/program

# --- final stage: the base OS, its Python, the environment and the code; nothing else -------
FROM ${BASE_IMAGE}
ARG PYTHON
RUN dnf install -y --setopt=install_weak_deps=False ${PYTHON} \
 && dnf clean all \
 && rm -rf /var/cache/dnf
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/program /opt/program
# Logs straight to CloudWatch (no buffering); no bytecode writes at run time (it is precompiled).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/opt/program \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Lets SageMaker run this container in an inference pipeline on SAGEMAKER_BIND_TO_PORT.
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true
EXPOSE 8080
# Exec form: SageMaker's `train`/`serve` argument arrives here and SIGTERM reaches Python.
ENTRYPOINT ["/opt/venv/bin/python", "-m", "sagemaker_contract"]

# The image SageMaker runs as `docker run IMAGE train` and `docker run IMAGE serve`.
# BASE_IMAGE is the base OS you chose; substitute a mirror or a digest at build time with
# `make build BASE_IMAGE=...` (or `docker build --build-arg BASE_IMAGE=...`).
# This OS ships a Python older than 3.9, so the image brings its own: CPython from
# python-build-standalone (built against glibc 2.17), installed by uv. No OS package is needed,
# and requirements.lock pins wheels that run on glibc 2.17.
ARG BASE_IMAGE=centos:7
ARG PYTHON=3.11
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.7

FROM ${UV_IMAGE} AS uv

# --- build stage: CPython and the Python environment, from requirements.lock (hash-checked) ---
FROM ${BASE_IMAGE} AS build
ARG PYTHON
# Build-time only, for networks behind a proxy or with a private index; none of these reach the
# final image: PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, EXTRA_CA_CERTS (PEM text of extra CAs), and
# UV_PYTHON_INSTALL_MIRROR (where to download CPython from instead of GitHub).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG EXTRA_CA_CERTS
ARG UV_PYTHON_INSTALL_MIRROR
ENV UV_PYTHON_INSTALL_DIR=/opt/python UV_PYTHON_PREFERENCE=only-managed UV_NO_CACHE=1
COPY --from=uv /uv /usr/local/bin/uv
COPY requirements.lock /tmp/requirements.lock
RUN if [ -n "${EXTRA_CA_CERTS}" ]; then \
        printf '%s\n' "${EXTRA_CA_CERTS}" > /tmp/build-ca.pem; \
        export SSL_CERT_FILE=/tmp/build-ca.pem; \
    fi \
 && uv python install "${PYTHON}" \
 && uv venv --python "${PYTHON}" /opt/venv \
 && uv pip install --python /opt/venv/bin/python --require-hashes --only-binary :all: \
        ${PIP_INDEX_URL:+--index-url "${PIP_INDEX_URL}"} \
        ${PIP_EXTRA_INDEX_URL:+--extra-index-url "${PIP_EXTRA_INDEX_URL}"} \
        -r /tmp/requirements.lock \
 && rm -f /tmp/build-ca.pem
# A smaller environment that runs the same code (docker/slim-python-env.sh says what it drops).
# KEEP_SOURCES=1 keeps the libraries' .py files, for code that reads its own source.
ARG KEEP_SOURCES=0
COPY docker/slim-python-env.sh /tmp/slim-python-env.sh
RUN sh /tmp/slim-python-env.sh /opt/venv/bin/python
COPY src/ /opt/program/
RUN /opt/venv/bin/python -m compileall -q /opt/program

# --- final stage: the base OS, CPython, the environment and the code; nothing else ----------
FROM ${BASE_IMAGE}
COPY --from=build /opt/python /opt/python
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

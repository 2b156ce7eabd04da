# Bakes a model directory into a worker image, for clusters that ship models as images.
#   docker build -f deploy/model.Dockerfile --build-arg BASE=logbert-stream:cpu \
#     --build-context model=path/to/model -t logbert-stream:cpu-<model version> .
ARG BASE=logbert-stream:cpu
FROM ${BASE}
COPY --from=model --chown=10001:10001 . /model/

#!/bin/sh
# The vLLM command of an engine that spans nodes (`nodes` > 1 in the matrix): pipelines/kubernetes.py sets it as
# YARDSTICK_VLLM_COMMAND, with RAY_ADDRESS, in that variant's engine-step pod. It joins this pod to the Ray cluster
# of deploy/kuberay/raycluster.yaml as one of the engine's nodes, with the GPUs the pod was given, and then becomes
# vLLM (exec: same process, so the engine step supervises, measures and stops vLLM as on one machine). vLLM, told
# `--distributed-executor-backend ray`, places its ranks on this pod's GPUs and the Ray workers'.
set -eu

if [ -z "${RAY_ADDRESS:-}" ]; then
    echo "vllm-on-ray: RAY_ADDRESS is not set; set it to the Ray head's GCS address (host:6379), as" \
         "pipelines/kubernetes.py does for a variant with nodes > 1" >&2
    exit 2
fi

# Once per pod: an engine started again in the same step finds this node already in the cluster.
if [ ! -e /tmp/ray/session_latest ]; then
    ray start --address="$RAY_ADDRESS" --disable-usage-stats
fi
exec vllm "$@"

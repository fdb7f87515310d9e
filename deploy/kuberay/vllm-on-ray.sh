#!/bin/sh
# The vLLM command of an engine that spans nodes (`nodes` > 1 in the matrix): pipelines/kubernetes.py sets it as
# YARDSTICK_VLLM_COMMAND, with RAY_ADDRESS, in that variant's engine-step pod. It joins this pod to the Ray cluster
# of deploy/kuberay/raycluster.yaml as one of the engine's nodes, with the GPUs the pod was given, and then becomes
# vLLM (exec: same process, so the engine step supervises, measures and stops vLLM as on one machine). vLLM, told
# `--distributed-executor-backend ray`, places its ranks on this pod's GPUs and the Ray workers'.
#
# Ray's node is started once per pod and outlives the engine: `ray start` leaves its daemons (the raylet and the agents)
# running, and they are started in a session of their own (setsid), outside the engine's process group, which the
# engine step ends whole when it stops the engine. An engine started again in the same step finds the raylet alive and
# reuses the node; when it is not (it died), the node's remains are stopped and the node is started anew.
set -eu

if [ -z "${RAY_ADDRESS:-}" ]; then
    echo "vllm-on-ray: RAY_ADDRESS is not set; set it to the Ray head's GCS address (host:6379), as" \
         "pipelines/kubernetes.py does for a variant with nodes > 1" >&2
    exit 2
fi

# Whether this pod's raylet runs: a process whose command name is `raylet` and that is not a zombie (nothing may reap
# it in a pod). Read from /proc: the image need not have pgrep.
raylet_alive() {
    for process in /proc/[0-9]*; do
        if [ "$(cat "$process/comm" 2>/dev/null)" = raylet ] \
                && ! grep -qs '^State:[[:space:]]*Z' "$process/status"; then
            return 0
        fi
    done
    return 1
}

if ! raylet_alive; then
    ray stop --force >/dev/null 2>&1 || true
    setsid -w ray start --address="$RAY_ADDRESS" --disable-usage-stats
    if ! raylet_alive; then
        echo "vllm-on-ray: ray start returned but no raylet runs in this pod; see /tmp/ray/session_latest/logs" >&2
        exit 1
    fi
fi
exec vllm "$@"

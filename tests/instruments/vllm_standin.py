"""A stand-in for `vllm serve` on machines without a GPU: it takes vLLM's command line and serves the reference
server (known timing) under the served model name. A test instrument for the launcher (argv, readiness, logs,
teardown), not an engine; the GPU path itself is checked whenever a GPU is lent.

    python -m tests.instruments.vllm_standin serve MODEL --host H --port P --served-model-name NAME [vLLM flags]

STANDIN_FAIL=oom makes it print what vLLM prints when the KV cache does not fit, and exit 1.
STANDIN_CHILD=1 makes it start a child process first, as vLLM starts its engine core and workers.
STANDIN_LOAD_S=N makes it load for N seconds first, deaf to SIGTERM meanwhile, as vLLM can be while it loads.
Like vLLM it reports its version at /version: STANDIN_VERSION.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

import uvicorn

from tests.instruments.reference_server import ReferenceServer

STANDIN_VERSION = "0.0.0+standin"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name")
    args, vllm_flags = parser.parse_known_args()
    print(f"vllm stand-in: serve {args.model} as {args.served_model_name} with {' '.join(vllm_flags)}", flush=True)
    if os.environ.get("STANDIN_CHILD"):
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    if os.environ.get("STANDIN_LOAD_S"):
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(float(os.environ["STANDIN_LOAD_S"]))
        signal.signal(signal.SIGTERM, previous)
    if os.environ.get("STANDIN_FAIL") == "oom":
        time.sleep(0.5)
        print("ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` "
              "when initializing the engine.", flush=True)
        sys.exit(1)
    reference = ReferenceServer(ttft_ms=5, tpot_ms=1, slots=8, model=args.served_model_name or args.model)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/version":
            body = json.dumps({"version": STANDIN_VERSION}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await reference(scope, receive, send)

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

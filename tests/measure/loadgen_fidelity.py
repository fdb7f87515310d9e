"""Does the load generator measure the reference server's known timing, and can it saturate it?

Starts the reference server (tests/instruments/reference_server.py) and runs `yardstick bench` levels
against it; prints measured against true TTFT/TPOT/ITL and throughput against the server's nominal capacity,
slots / (ttft + (output - 1) * tpot), and against what the server itself delivered, with the share of its
slot-time it spent waiting on the client (`starved`).

    .venv/bin/python -m tests.measure.loadgen_fidelity [--concurrency 1,16,256] [--num-requests 2560]
"""

import argparse
import asyncio

import httpx

from assets.engine.loadtest import Endpoint, Load, run_level, summarise_level
from tests.instruments.reference_server import running_reference_server, served_stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--tpot-ms", type=float, default=20.0)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=16)
    parser.add_argument("--concurrency", default="1,16,256")
    parser.add_argument("--num-requests", type=int, default=2560, help="a multiple of the slots")
    args = parser.parse_args()
    capacity = args.slots / ((args.ttft_ms + (args.output_len - 1) * args.tpot_ms) / 1000)
    print(f"truth: TTFT {args.ttft_ms} ms, TPOT = ITL {args.tpot_ms} ms, capacity {capacity:.1f} requests/s")
    with running_reference_server(args.ttft_ms, args.tpot_ms, args.slots) as base_url:
        endpoint = Endpoint(base_url, "reference")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            requests = args.num_requests if concurrency > args.slots else min(args.num_requests, 10 * concurrency)
            load = Load(concurrency=concurrency, num_requests=requests, input_len=32, output_len=args.output_len,
                        warmup=0)
            httpx.post(base_url.removesuffix("/v1") + "/stats/reset", timeout=5).raise_for_status()
            level = summarise_level(load, *asyncio.run(run_level(endpoint, load)))
            served = served_stats(base_url)
            ideal = min(concurrency, args.slots) / ((args.ttft_ms + (args.output_len - 1) * args.tpot_ms) / 1000)
            print(f"concurrency {concurrency:>4} ({requests} requests): TTFT mean {level['ttft_ms']['mean']:.1f} ms, "
                  f"TPOT mean {level['tpot_ms']['mean']:.2f} ms, ITL p50 {level['itl_ms']['p50']:.2f} ms, "
                  f"{level['request_throughput']:.1f} req/s = {level['request_throughput'] / ideal:.1%} of "
                  f"{ideal:.1f} ideal, {level['request_throughput'] / served['delivered_rps']:.1%} of the "
                  f"{served['delivered_rps']:.1f} delivered; starved {served['starved_fraction']:.2%}")


if __name__ == "__main__":
    main()

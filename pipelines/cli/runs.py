"""The commands around runs: `variants` (list or check the matrix's), `materialize` (run them), `recover` (free
what dead runs hold) and `k8s-config` (their step pods on Kubernetes)."""

from __future__ import annotations

import argparse
import os
import sys

from assets.matrix import load_matrix, matrix_path
from pipelines import settings
from pipelines.cli.common import MATRIX_HELP, InputError, warehouse


def variants(args: argparse.Namespace, quiet: bool = False) -> int:
    """The matrix's variants, one per line; given names, those names once each checked against the matrix (the
    whole matrix is validated either way), so `make run` refuses an unknown variant before anything runs."""
    known = list(load_matrix(args.matrix).variants)
    unknown = [name for name in args.names if name not in known]
    if unknown:
        raise InputError(f"unknown variant{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; the matrix "
                         f"{args.matrix or matrix_path()} has: {', '.join(known)}")
    for name in [] if quiet else dict.fromkeys(args.names) or known:
        print(name)
    return 0


def recover(args: argparse.Namespace) -> int:
    """Free what runs that died left held (see pipelines.recovery); `make run` calls it before it runs."""
    import dagster as dg

    from pipelines.recovery import recover as recover_runs

    if not os.environ.get("DAGSTER_HOME"):
        print("yardstick recover: DAGSTER_HOME is not set, so Dagster keeps no runs between processes and none "
              "can hold anything", file=sys.stderr)
        return 0
    with dg.DagsterInstance.get() as instance:
        done = recover_runs(instance, warehouse())
    for recovery in done:
        print(f"yardstick recover: {recovery.what}", file=sys.stderr)
    return 0


def materialize(args: argparse.Namespace) -> int:
    """Every asset of each variant, as `dagster asset materialize`, as many at once as the host has engine devices,
    stopped cleanly by Ctrl-C or SIGTERM."""
    from pipelines.supervise import materialize as materialize_variants
    from pipelines.supervise import route
    from resources.devices import DeviceResource

    variants(argparse.Namespace(matrix=None, names=args.variants), quiet=True)
    host = DeviceResource(claims_dir=str(settings.claims_dir()), devices=settings.devices()).host()
    store = warehouse()
    runnable = route(load_matrix(), list(dict.fromkeys(args.variants)), store)
    return materialize_variants(runnable, store, host, args.select, args.jobs) if runnable else 0


def k8s_config(args: argparse.Namespace) -> int:
    """Each variant's step pods on Kubernetes (pipelines.kubernetes), as the run config the `evaluation` job gives
    the variant's partition when YARDSTICK_EXECUTOR=k8s."""
    import yaml

    from pipelines.kubernetes import KubernetesConfigError, matrix_pod_configs
    from resources.prices import PriceCatalogError

    variants(argparse.Namespace(matrix=args.matrix, names=args.variants), quiet=True)
    try:
        configs = matrix_pod_configs(load_matrix(args.matrix))
    except (KubernetesConfigError, PriceCatalogError) as error:
        raise InputError(str(error)) from None
    chosen = dict.fromkeys(args.variants) or configs
    print(yaml.safe_dump({name: {"execution": {"config": configs[name]}} for name in chosen}, sort_keys=False), end="")
    return 0


def add_variants(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("variants", help="list the variants of the evaluation matrix, or check names")
    parser.add_argument("names", nargs="*", help="variants to check against the matrix (default: list them all)")
    parser.add_argument("--matrix", help=MATRIX_HELP)
    parser.set_defaults(handler=variants)


def add_recover(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "recover", help="free what runs that died (killed, out of memory, a restart) still hold")
    parser.set_defaults(handler=recover)


def add_materialize(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "materialize", help="materialize variants' assets (as `dagster asset materialize`), as many at once as the "
                            "host has engine devices, stopped cleanly by Ctrl-C or SIGTERM even while they wait for "
                            "the engine")
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--jobs", type=int, default=None,
                        help="variants run at once (default: the host's GPUs, or CPU engine slots)")
    parser.add_argument("--select", default="*", help="Dagster asset selection (default: every asset)")
    parser.set_defaults(handler=materialize)


def add_k8s_config(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("k8s-config", help="print each variant's Kubernetes step-pod config (GPUs, node "
                                                    "selector, volumes, secrets) as the evaluation job's run config")
    parser.add_argument("variants", nargs="*", help="variants of the matrix (default: all of them)")
    parser.add_argument("--matrix", help=MATRIX_HELP)
    parser.set_defaults(handler=k8s_config)

"""Where a benchmark's rows come from: one frozen dataclass per kind of source, a closed union of them, and
`source_rows`, which reads any of them.

Offline, a folder of JSONL copies (the benchmark mirror) stands in for the hub: a benchmark on the hub names its
file there. A benchmark shipped inside a pinned dependency reads it from the package unless the mirror holds it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


class BenchmarkDataError(ValueError):
    """A benchmark file or dataset is missing, or a row lacks what the benchmark needs."""


@dataclass(frozen=True)
class HubDataset:
    """`datasets.load_dataset` at a commit sha (the revision, or the branch head resolved and recorded); `renames`
    maps the hub's field names to those used here; `keep` narrows the hub's rows (the mirror holds only kept ones)."""

    hub_id: str
    mirror_file: str
    config: str | None = None
    split: str = "test"
    revision: str | None = None
    renames: dict[str, str] = field(default_factory=dict)
    keep: Callable[[dict], bool] | None = None


@dataclass(frozen=True)
class HubFiles:
    """JSONL files of a hub dataset repository, read directly where `datasets` cannot: `read(options)` gives the
    rows the benchmark's options choose and the source to record (LiveCodeBench's release files)."""

    hub_id: str
    mirror_file: str
    read: Callable[[dict], tuple[list[dict], str]]
    split: str = "test"


@dataclass(frozen=True)
class PackageFile:
    """A JSONL file (gzipped or not) inside an installed package: offline and exact. `hub_id` and `split` name the
    same data on the hub, which calibration must not use."""

    package: str
    path: str
    mirror_file: str
    hub_id: str
    split: str = "test"


@dataclass(frozen=True)
class Generated:
    """Rows made by a function of the limit (all when None), always the same ones."""

    generate: Callable[[int | None], list[dict]]


Source = HubDataset | HubFiles | PackageFile | Generated


def hub_test_split(source: Source) -> tuple[str, str] | None:
    """(hub dataset, split) whose rows are this benchmark's test items; None for generated ones."""
    if isinstance(source, Generated):
        return None
    return source.hub_id, source.split


def utf8_lines(path: str | Path, error: type[Exception]) -> Iterator[tuple[int, str]]:
    """Each line of a text file with its number (from 1), decoded as UTF-8 one line at a time, so that an invalid
    byte raises `error` naming the file and the line; a byte-order mark opening the file is dropped."""
    try:
        handle = open(path, "rb")   # noqa: SIM115 - closed below; an error opening it is named
    except FileNotFoundError:
        raise
    except OSError as opening:
        raise error(f"{path} cannot be read ({opening.strerror}); name a JSONL file") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as decoding:
                raise error(
                    f"{path} line {number} is not valid UTF-8 ({decoding.reason} at byte {decoding.start + 1} of "
                    f"the line: {raw[decoding.start:decoding.end]!r}); save the file as UTF-8"
                ) from None


def read_jsonl(path: Path) -> list[dict]:
    """Every row of a JSONL file, the whole file read before any is returned: a line that is not UTF-8 or not
    JSON raises BenchmarkDataError naming the file and line, whatever limit the caller applies later."""
    rows = []
    for number, line in utf8_lines(path, BenchmarkDataError):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except (ValueError, RecursionError) as error:
            raise BenchmarkDataError(f"{path} line {number} is not valid JSON: {error}") from None
    return rows


def source_rows(source: Source, benchmark: str, mirror_dir: str | Path | None, limit: int | None,
                options: dict) -> tuple[Iterable[dict], str]:
    """The benchmark's raw rows and the source to record with its items: generated; from the package unless the
    mirror folder holds the file; from the mirror folder when one is given; else from the hub."""
    if isinstance(source, Generated):
        return source.generate(limit), f"generated:{benchmark}"
    if isinstance(source, PackageFile) and not (mirror_dir and (Path(mirror_dir) / source.mirror_file).exists()):
        return _package_rows(source, benchmark)
    if mirror_dir:
        return _mirror_rows(source.mirror_file, benchmark, Path(mirror_dir))
    if isinstance(source, HubFiles):
        return source.read(options)
    return _hub_dataset_rows(source)


def _mirror_rows(mirror_file: str, benchmark: str, mirror_dir: Path) -> tuple[list[dict], str]:
    path = mirror_dir / mirror_file
    if not path.exists():
        raise BenchmarkDataError(
            f"benchmark '{benchmark}' expects {mirror_file} in the mirror folder {mirror_dir}, "
            "which has no such file; point YARDSTICK_BENCHMARK_MIRROR at a folder that has it, or unset it "
            "to load from the hub"
        )
    return read_jsonl(path), str(path)


def _hub_dataset_rows(source: HubDataset) -> tuple[Iterable[dict], str]:
    """`datasets.load_dataset` at a commit sha, so the source recorded with every item is exact."""
    import datasets
    from huggingface_hub import HfApi

    sha = HfApi().dataset_info(source.hub_id, revision=source.revision or "main").sha
    dataset = datasets.load_dataset(source.hub_id, source.config, split=source.split, revision=sha)
    rows: Iterable[dict] = ({source.renames.get(k, k): v for k, v in row.items()} for row in dataset)
    if source.keep is not None:
        rows = filter(source.keep, rows)
    return rows, f"hf://{source.hub_id}@{sha}"


def _package_rows(source: PackageFile, benchmark: str) -> tuple[list[dict], str]:
    import gzip
    import importlib.metadata
    import importlib.resources

    try:
        path = importlib.resources.files(source.package).joinpath(source.path)
        version = importlib.metadata.version(source.package.replace("_", "-"))
    except (ModuleNotFoundError, importlib.metadata.PackageNotFoundError):
        raise BenchmarkDataError(f"benchmark '{benchmark}' loads from the {source.package} package, which is not "
                                 f"installed; reinstall the project (make) or put {source.mirror_file} in the "
                                 "benchmark mirror folder") from None
    with importlib.resources.as_file(path) as file:
        opener = gzip.open if source.path.endswith(".gz") else open
        with opener(file, "rt", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    return rows, f"package:{source.package}=={version}/{source.path}"

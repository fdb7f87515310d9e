"""The evaluation matrix as a resource: loaded once per run and handed to every step."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from assets.matrix import Matrix, Variant, load_matrix


class MatrixResource(dg.ConfigurableResource):
    """The matrix file a run evaluates, read when the run starts: an edit while it runs reaches the next run,
    never the later steps of this one (their config hashes would no longer match)."""

    path: str
    benchmark_mirror: str | None = None   # overrides the matrix's own `benchmark_mirror`; None: the matrix's

    _matrix: Matrix | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._matrix = load_matrix(self.path)

    @property
    def matrix(self) -> Matrix:
        if self._matrix is None:
            self._matrix = load_matrix(self.path)
        return self._matrix

    def variant(self, name: str) -> Variant:
        return self.matrix.variant(name)

    def mirror_folder(self) -> str | None:
        return self.matrix.mirror_folder(self.benchmark_mirror)

"""mlsysgym.core: the shared vocabulary every layer imports, and which imports no other layer.

- ``errors``: the error root :class:`MlsysgymError` and the design-validation errors.
- ``params``, ``constraints``, ``space``: :class:`DesignSpace` (parameters, constraints,
  encodings, sampling, validation); ``gym_spaces``, ``optuna_space``, ``tune_space``,
  ``botorch_space``: its views for those libraries.
- ``evaluator``: the :class:`Evaluator` protocol (batched, cached, named and versioned) and the
  evaluator registry (``register_evaluator``, ``make_evaluator``).
- ``dataset``: every evaluation as a Parquet row (``ParquetAppender``, ``DatasetLogger``,
  ``read_dataset``).
- ``target``: the target fingerprint (CPU, ISA, versions) results and models record.

Import the names from their modules (``from mlsysgym.core.space import DesignSpace``); this
package module imports nothing so that ``import mlsysgym.core.errors`` stays cheap.
"""

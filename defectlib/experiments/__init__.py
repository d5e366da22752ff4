"""One home per paper: the experiment of each notebook, the parts its notebook and the tools share.

- :mod:`.danet`      notebook 01, DANet on NEU-DET (paper 000)
- :mod:`.severstal`  notebook 02, the two-stage Severstal pipeline (paper 001)
- :mod:`.ocinet`     notebook 03, OCINet (paper 003)
- :mod:`.synthetic`  notebook 04, synthetic data for defect segmentation (paper 004)

Each module builds its notebook's models and training loaders from a profile
(``defectlib.profiles.get(notebook, profile)``), so ``defectlib doctor`` checks exactly what a run
trains. Models themselves stay in :mod:`defectlib.models`, which imports no data, engine or metrics.
"""

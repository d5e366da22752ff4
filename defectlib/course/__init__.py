"""The course around the notebooks: running them, checking a machine, reporting and comparing runs.

- :mod:`.run`        ``defectlib run``: every notebook through papermill into a new run folder
                     (:mod:`.execute`: one notebook's process; :mod:`.preflight`: what is checked first)
- :mod:`.report`     a run's ``results.json`` and ``report.md``, every metric beside the paper's number
- :mod:`.reproduce`  does a run reproduce a reference, within the reference's seed noise?
- :mod:`.runs`       run folders and results folders: finding and reading them
- :mod:`.seeds`      ``defectlib seeds``: several seeds' runs committed as ``results/NN_<name>/``
- :mod:`.doctor`     ``defectlib doctor``: will the paper runs fit on this GPU and keep it fed?
- :mod:`.cli`        the ``defectlib`` command; :mod:`.data_cli` its ``data`` tools

It sits on top: it reads the notebooks' experiments through their registry
(:mod:`defectlib.experiments.registry`), and nothing below imports it.
"""

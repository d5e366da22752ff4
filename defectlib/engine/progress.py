"""The progress bar: tqdm's widget bar in Jupyter(Lab) when ipywidgets is installed, its text bar
in a terminal, and the text bar in batch runs (``DEFECTLIB_BATCH=1``, set by ``defectlib run`` for
papermill: an executed notebook keeps a text line, where a widget would be saved as an empty
placeholder)."""
import os

if os.environ.get("DEFECTLIB_BATCH") == "1":
    from tqdm import tqdm
else:
    try:
        import ipywidgets  # noqa: F401

        from tqdm.auto import tqdm
    except ImportError:  # tqdm.auto would warn "IProgress not found" and fall back; do it silently
        from tqdm import tqdm

__all__ = ["tqdm"]

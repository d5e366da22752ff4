"""The progress bar: tqdm's widget bar in Jupyter when ipywidgets is installed, its text bar otherwise."""
try:
    import ipywidgets  # noqa: F401

    from tqdm.auto import tqdm
except ImportError:  # tqdm.auto would warn "IProgress not found" and fall back; do it silently
    from tqdm import tqdm

__all__ = ["tqdm"]

"""defectlib."""

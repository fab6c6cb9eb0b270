"""Build helpers: the deployed dependency layer (``layer``), and the aarch64 Python it is tried on (``target``)."""

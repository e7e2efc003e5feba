"""lonescale-sync: keeps CRM contacts enriched through LoneScale."""

from importlib.metadata import PackageNotFoundError, version

try:
    # The version's one home is pyproject.toml; the installed package's metadata carries it here.
    __version__ = version("lonescale-sync")
except PackageNotFoundError:  # sources on sys.path without being installed
    __version__ = "0+unknown"

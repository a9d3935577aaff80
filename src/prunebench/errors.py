"""User-facing errors: the CLI prints these as one line, never a traceback."""


class PrunebenchError(Exception):
    """An error caused by user input or by files on disk; its message is shown as is."""


class DataError(PrunebenchError):
    """A data set is missing, corrupt or mis-configured."""


class SpecError(PrunebenchError):
    """A model spec is invalid (bad widths, unknown family, input too small, ...)."""


class CheckpointError(PrunebenchError):
    """A checkpoint folder is missing, corrupt, truncated or unsafe."""


class ConfigError(PrunebenchError):
    """A preset or option is invalid."""

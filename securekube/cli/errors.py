"""The one exception type the CLI turns into a single error line (no traceback)."""


class CliError(Exception):
    """A user mistake or an environment problem, worded for the person at the terminal."""

"""The one exception type a user can cause: the CLI prints its message and exits with status 2."""


class UserError(Exception):
    """Bad input from the user (a flag, a file, a matrix, a checkpoint): one clear sentence."""

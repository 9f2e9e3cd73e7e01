"""The one exception type users see: CLIs print its message on one line and exit with code 2."""


class LandscapeError(ValueError):
    """Bad input (file, flag, setting). The message says what was received, what is valid, how to fix it."""

"""alexp: declarative experiments that benchmark active-learning selection strategies."""

__version__ = "0.1.0"


class AlexpError(ValueError):
    """A problem with the user's configuration or data, reported as one line without a traceback."""


def plural(n: int, word: str) -> str:
    """'1 label', '2 labels'."""
    return f"{n} {word}" + ("" if n == 1 else "s")

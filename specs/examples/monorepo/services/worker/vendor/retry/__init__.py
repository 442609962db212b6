"""retry 1.2.0 (vendored): call a function until it succeeds."""

__version__ = "1.2.0"


def retry(fn, attempts=3):
    for i in range(attempts):
        try:
            return fn()
        except Exception:
            if i == attempts - 1:
                raise

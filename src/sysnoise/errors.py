"""Errors that name what went wrong and where, so a long run can skip one file and go on."""

import re

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
MAX_MESSAGE = 500


class SampleError(Exception):
    """One sample cannot go through one stage; the run records it and continues."""


class DecodeError(SampleError):
    pass


class UserInputError(Exception):
    """Bad arguments, files or configuration: reported to the user without a traceback."""


def message(err: BaseException | str) -> str:
    """A failure's text as results record it: without the object addresses some libraries put in
    it (Pillow's `<_io.BytesIO object at 0x7f55...>`), so identical runs record identical text,
    and bounded in length. Keeping this string, not the exception, frees what its traceback holds."""
    return _ADDRESS.sub("", str(err))[:MAX_MESSAGE]

"""Errors that name what went wrong and where, so a long run can skip one file and go on."""


class SampleError(Exception):
    """One sample cannot go through one stage; the run records it and continues."""


class DecodeError(SampleError):
    pass


class UserInputError(Exception):
    """Bad arguments, files or configuration: reported to the user without a traceback."""

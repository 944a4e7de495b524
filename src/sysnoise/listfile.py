"""The text list files sysnoise reads (classification `PATH LABELS`, segmentation `IMAGE LABEL-MAP`):
one entry per line, fields separated by a tab when a field holds spaces, else by whitespace; a
line starting with # is a comment (a # anywhere else is part of a path); NUL bytes are refused."""

from __future__ import annotations

from sysnoise.errors import UserInputError


def split_fields(line: str, where: str, most: int, fmt: str) -> list[str] | None:
    """The fields of one line (at most `most`), None for a blank or comment line. fmt: the file's
    format in words, for the error."""
    text = line.strip(" \r\n")  # not tabs: `PATH<TAB>` is a path with spaces and an empty field
    if not text.strip() or text.lstrip().startswith("#"):
        return None
    if "\0" in text:
        raise UserInputError(f"{where}: NUL byte in the line; a list file is text, one entry per line")
    if "\t" in text:
        fields = [part.strip() for part in text.split("\t")]
        if len(fields) > most:
            raise UserInputError(
                f"{where}: {len(fields) - 1} tabs; write the {most} fields with one tab between each ({fmt})"
            )
        return fields
    fields = text.split()
    if len(fields) > most:
        raise UserInputError(
            f"{where}: {len(fields)} space-separated fields; a path with spaces needs a tab between "
            f"the fields, and # comments go on their own line ({fmt})"
        )
    return fields

"""The embedded defaults: demo models and data that need no download (registered through
sysnoise.catalogue)."""

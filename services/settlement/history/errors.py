"""History import problems of the settlement side (the rules' own are the wallet's:
history-refused, history-overlaps)."""

from shared.errors import NotFound, Problem, Unprocessable


class ImportNotFound(NotFound):
    slug, title = "history-import-not-found", "No such history import"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "The history file must be text/csv"


class FileUnreadable(Unprocessable):
    slug, title = "history-file-unreadable", "The history file cannot be read; nothing was imported"

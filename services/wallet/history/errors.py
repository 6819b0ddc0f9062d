"""History import problems. Each carries every problem the check found (`errors`: line, key,
field, code, detail), so that one answer lists all that must be fixed."""

from shared.errors import Conflict, Unprocessable


class HistoryRefused(Unprocessable):
    slug, title = "history-refused", "The history file has bad rows; nothing was imported"


class HistoryOverlaps(Conflict):
    slug, title = "history-overlaps", "The history overlaps the region's own; nothing was imported"

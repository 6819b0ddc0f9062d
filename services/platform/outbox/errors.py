"""Problems of the outbox, each with its HTTP status and stable problem type."""

from shared.errors import Conflict, NotFound


class OutboxEventNotFound(NotFound):
    slug, title = "outbox-event-not-found", "No such outbox event"


class OutboxEventPending(Conflict):
    slug, title = "outbox-event-pending", "The event is still being delivered: there is nothing to re-send"


class OutboxEventWithdrawn(Conflict):
    slug, title = "outbox-event-withdrawn", "The destination withdrew the event: it is never sent"

"""What other modules use of the outbox (the checkouts here; the data platform's payment results):
write an event in the caller's session, and register a destination kind's signer.

`enqueue(session, clock, region_id=, event_type=, stream=, destination=Destination(kind, key,
url), payload=) -> event id`: the event is delivered if and only if the caller's transaction
commits, after every earlier event of the same `stream`, as a signed POST of
`{"id", "type", "created_at", "data": payload}` to `url` (tasks.py). Never commits.

`register_destination(kind, signer)`: before each delivery of an event of `kind`,
`signer(session, Message)` answers the secret to sign it with, or None to withdraw it (it is
marked withdrawn and never sent; e.g. a resident revoked their opt-in since it was written).
"""

from services.platform.outbox.service import Destination, Message, Signer, enqueue, register_destination

__all__ = ["Destination", "Message", "Signer", "enqueue", "register_destination"]

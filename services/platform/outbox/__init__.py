"""The outbox: events written in the transaction of the change they announce, delivered to their
destination's URL afterwards by a worker (tasks.py), signed by the webhook scheme of
shared/webhooks.py. Other modules write into it through public.py."""

"""The city's platform: partner services (online medical consultation, the farm-to-restaurant
marketplace, tourism bookings) that take payment in the currency through a published checkout
API, and the outbox that tells them, and the city's data platform, what happened. Built on the
wallet's public surface only (services/wallet/public.py), like coupons and settlement."""

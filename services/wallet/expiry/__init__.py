"""Expiry of lots at the end of their validity, and the notices before it."""

"""Bundles (issue 13, item 5): shop coupons and a bus ticket offered and claimed as one unit."""

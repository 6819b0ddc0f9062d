"""Segments: residents' attributes and consents, the operator's audiences built from them and from
residents' own activity, and notices to those audiences (issue 13, item 6). Other parts of coupons
call `public.py`; the wallet is used only through services/wallet/public.py."""

"""Who may see or do what in the platform: every rule about the caller (the request's
`Principal`) is here, asked by the endpoints before they call a service with an explicit scope
or `Actor`.

- A partner service's key acts for its one partner service (`PartnerScope`): it sees and changes
  only its own checkouts (another partner's is not found).
- A resident sees any checkout of their region by its id (the link the partner gave them) and
  acts on it as its payer.
- The operator (and the auditor, reading) manages the region's partner services and outbox.
"""

from __future__ import annotations

from services.platform.partners.service import PartnerScope
from shared.auth import Principal, Role


def partner_scope(principal: Principal) -> PartnerScope:
    assert principal.role is Role.PARTNER_SERVICE and principal.partner_service_id is not None, "a partner service's key"
    assert principal.api_key_id is not None
    return PartnerScope(principal.region_code, principal.partner_service_id, principal.api_key_id)

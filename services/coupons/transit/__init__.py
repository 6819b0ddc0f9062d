"""Transit fare products and offline-verifiable e-tickets: bus operators, their fare products,
residents' tickets bought with the coin, the rotating codes a validator checks, and its scans."""

"""Payment results to the city's data platform (issue 15, item 4): residents' sharing choices
(from the city's ID or their own setting), the events for the residents who share and the daily
aggregates for everyone, delivered through the outbox."""

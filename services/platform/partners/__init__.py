"""Partner services: the smart-city services that take payment in the currency online."""

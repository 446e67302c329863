"""EcoFlow cloud protocol library: no Home Assistant imports allowed here."""

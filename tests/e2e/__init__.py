"""End-to-end scenarios: stand-in cloud, real brokers, Home Assistant and real agents."""

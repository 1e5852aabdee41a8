"""The outbox table and the relay that publishes it from inside the orders process."""
